# shellcheck shell=bash disable=SC2034  # sourced by the host-cluster scripts
# Pinned versions of everything the host cluster builds. Every Go program is built from its
# Go module at these versions in ONE wrapper module (deploy/hostcluster/build.sh), so the
# Kubernetes client libraries they share are compiled once. The components were chosen so
# that they all use the same Kubernetes libraries (v0.34.x), which the wrapper pins.
KUBE_VERSION=${KUBE_VERSION:-v1.34.3}         # k8s.io/kubernetes: control plane, kubelet, kube-proxy, kubectl
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.1}   # github.com/coredns/coredns (client-go v0.34.3)
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.0}   # sigs.k8s.io/metrics-server
PROM_OPERATOR_VERSION=${PROM_OPERATOR_VERSION:-v0.85.0}     # prometheus-operator + config reloader
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-v2.1.0}          # kube-router (NetworkPolicy controller only)
# github.com/prometheus/prometheus v0.307.3 is Prometheus 3.7.3, the first on the Kubernetes
# v0.34 libraries. Debian's Prometheus lacks Kubernetes service discovery.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.307.3}
# k8s.io/kube-state-metrics/v2: the proxy lists no version of it, but serves this exact one.
KSM_VERSION=${KSM_VERSION:-v2.18.0}
