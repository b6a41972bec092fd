#!/usr/bin/env bash
# A real single-node Kubernetes on this Linux host, for machines where kind cannot run (no
# container registry to pull its node image from). Root only: it changes the host.
#
#   hostcluster.sh install    apt packages (containerd, runc, etcd, CNI plugins, docker.io, ...)
#   hostcluster.sh build      the Go programs (build.sh) and the images (images.sh)
#   hostcluster.sh start      control plane, node, add-ons (DNS, storage, metrics-server,
#                             NetworkPolicy controller, Prometheus Operator, kube-state-metrics)
#   hostcluster.sh stop       everything down; the host put back as it was before `start`
#   hostcluster.sh status     what runs
#   hostcluster.sh running    exit status 0 when the cluster runs
#   hostcluster.sh snapshot   the host state that `stop` must restore (used by the tests)
#
# What runs where (every address below is this host's):
#   - the node address $NODE_IP is added to lo (a dummy interface needs a kernel module
#     this kind of machine lacks); pods reach it through their bridge's gateway: the
#     apiserver ($NODE_IP:26443), the kubelet ($NODE_IP:10250);
#   - etcd (127.0.0.1:22379), controller-manager, scheduler, kube-proxy, kube-router and
#     containerd are processes; CoreDNS, metrics-server, the Prometheus Operator, Prometheus and
#     kube-state-metrics run as pods from images built here;
#   - NodePorts listen on 127.0.0.1 (the gateway on 30080, Prometheus 30090, Jaeger 30686).
# All state lives under $HOSTCLUSTER_STATE; the built programs and images under
# $PERFLAB_CACHE, keyed by version, so a second `start` is warm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/hostcluster/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"

STATE=${HOSTCLUSTER_STATE:-/var/lib/perflab-hostcluster}
NODE_IP=${HOSTCLUSTER_NODE_IP:-10.250.0.1}
NODE_NAME=perflab
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
CNI_NETWORK=perflab-net
CNI_BRIDGE=perflab-cni0
CONTEXT=perflab-host
KUBECONFIG_FILE=$STATE/admin.kubeconfig
CTRD_SOCK=$STATE/containerd/containerd.sock
DOCKER_SOCK=$STATE/docker/docker.sock
DOCKER=/usr/bin/docker # Debian's client: BuildKit without the buildx plugin
# Ports this cluster listens on; `start` refuses to run when any is taken.
PORTS=(22379 22380 26443 10250 10248 10249 10256 10257 10259 21010 30080 30090 30686 30089)
# The host ports kind publishes (deploy/kind/cluster.yaml), forwarded to the same NodePorts
# here, so every URL of the lab is the same on both providers. A port that is taken (say
# `make local`'s Jaeger on 16686) is left alone with a warning; the NodePort still answers.
declare -A HOST_PORTS=([8080]=30080 [9090]=30090 [16686]=30686 [8089]=30089)
# Host settings that kubelet, kube-proxy and kube-router change: saved before, put back after.
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Processes, in start order; stop goes the other way.
COMPONENTS=(dockerd etcd kube-apiserver kube-controller-manager kube-scheduler containerd
  kubelet kube-proxy kube-router port-8080 port-9090 port-16686 port-8089)

bin_dir() { "$here/build.sh"; }
k() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
pidfile() { echo "$STATE/run/$1.pid"; }
running() { # NAME: true while our NAME process runs
  local f
  f=$(pidfile "$1")
  [[ -f $f ]] && alive "$(<"$f")"
}
need_root() { ((EUID == 0)) || die "hostcluster: run as root (it starts a kubelet and changes iptables, sysctls and interfaces)"; }

# daemon NAME CMD...: runs CMD in its own session, output in $STATE/logs/NAME.log.
daemon() {
  local name=$1
  shift
  mkdir -p "$STATE/run" "$STATE/logs"
  setsid nohup "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# until_ok NAME SECONDS CMD...: retries CMD; fails early with NAME's log when it died.
until_ok() {
  local name=$1 timeout=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $name ]] && ! running "$name"; then
      tail -n 25 "$STATE/logs/$name.log" >&2 || true
      die "hostcluster: $name exited during start-up; see $STATE/logs/$name.log"
    fi
    if ((SECONDS >= deadline)); then
      [[ -z $name ]] || tail -n 25 "$STATE/logs/$name.log" >&2 || true
      die "hostcluster: timed out after ${timeout}s waiting for: $*"
    fi
    sleep 1
  done
}

install() {
  need_root
  local pkgs=(containerd runc iptables ipset etcd-server containernetworking-plugins conntrack
    gcc libc6-dev docker.io openssl debootstrap iproute2 curl socat) missing=() p
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "hostcluster: apt: installing ${missing[*]}"
  # Keep the packages from starting their own daemons (containerd, dockerd) on install.
  local policy=/usr/sbin/policy-rc.d made=
  [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1; }
  local rc=0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [[ -z $made ]] || rm -f "$policy"
  ((rc == 0)) || die "hostcluster: apt-get install failed (exit $rc)"
}

# --- host state ----------------------------------------------------------------------------
# Everything `stop` must put back, one line per fact, sorted: compare two of these with diff.
snapshot() {
  local - k t ipt
  set +e +o pipefail # a fact that cannot be read is simply absent (grep -c of nothing fails)
  for k in "${SYSCTLS[@]}"; do echo "sysctl $k=$(sysctl -n "$k" 2>/dev/null || echo absent)"; done
  for ipt in iptables ip6tables; do
    for t in filter nat mangle raw; do
      "$ipt-save" -t "$t" 2>/dev/null | sed -n "s/^:\([^ ]*\).*/$ipt $t chain \1/p"
      "$ipt-save" -t "$t" 2>/dev/null | grep -c '^-A' | sed "s/^/$ipt $t rules /"
    done
  done
  ipset list -n 2>/dev/null | sed 's/^/ipset /'
  awk '{print "mount " $5}' /proc/self/mountinfo
  ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print "link " $2}'
  ip -o addr show | awk '{print "addr " $2 " " $4}'
  ip route show table all 2>/dev/null | grep -v 'proto kernel' | sed 's/^/route /' || true
  find /var/run/netns -mindepth 1 -maxdepth 1 -printf 'netns %f\n' 2>/dev/null || true
  find /var/lib/cni /etc/cni -mindepth 1 2>/dev/null | sed 's/^/cni /' || true
  pgrep -fa "$STATE" 2>/dev/null | awk '{print "process " $2}' || true
} 2>/dev/null

save_host() {
  mkdir -p "$STATE"
  local k
  for k in "${SYSCTLS[@]}"; do
    if sysctl -n "$k" >/dev/null 2>&1; then echo "$k=$(sysctl -n "$k")"; fi
  done >"$STATE/sysctl.orig"
  snapshot | sort >"$STATE/host.before"
}

# --- preflight -----------------------------------------------------------------------------
preflight() {
  need_root
  local p holder leftovers=()
  for p in "${PORTS[@]}"; do
    if port_open 127.0.0.1 "$p"; then
      holder=$(ss -Htlnp "sport = :$p" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\).*/\1/p' | head -n 1)
      die "hostcluster: port $p is taken${holder:+ by $holder}; stop what holds it, or \`make down PROVIDER=host\` if it is a previous cluster"
    fi
  done
  for p in "${COMPONENTS[@]}"; do running "$p" && leftovers+=("$p"); done
  ((${#leftovers[@]} == 0)) ||
    die "hostcluster: a previous run is still running (${leftovers[*]}); run \`make down PROVIDER=host\` first"
  if ip -o addr show dev lo | grep -q " $NODE_IP/"; then
    die "hostcluster: the node address $NODE_IP is on lo already (left by a previous run?); run \`make down PROVIDER=host\` first"
  fi
  [[ ! -e $STATE/host.before ]] ||
    die "hostcluster: $STATE holds a previous run's state; run \`make down PROVIDER=host\` first"
  for p in containerd runc etcd ipset iptables conntrack socat debootstrap; do
    command -v "$p" >/dev/null || die "hostcluster: $p is missing; run \`$0 install\`"
  done
  [[ -x /usr/lib/cni/bridge ]] || die "hostcluster: CNI plugins missing; run \`$0 install\`"
}

# --- certificates and configuration --------------------------------------------------------
pki() {
  local P=$STATE/pki n
  mkdir -p "$P"
  (
    cd "$P"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj /CN=perflab-host-ca -days 30 -out ca.crt 2>/dev/null
    cat >ext.cnf <<EOF
[s]
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1
[c]
extendedKeyUsage=clientAuth
EOF
    cert() { # NAME SUBJECT EXTENSION
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile ext.cnf -extensions "$3" -out "$1.crt" 2>/dev/null
    }
    cert apiserver /CN=kube-apiserver s
    cert admin "/CN=admin/O=system:masters" c
    cert kcm /CN=system:kube-controller-manager c
    cert sched /CN=system:kube-scheduler c
    cert kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" c
    cert kproxy /CN=system:kube-proxy c
    cert krouter "/CN=kube-router/O=system:masters" c
    cert apiserver-kubelet "/CN=kube-apiserver-kubelet-client/O=system:masters" c
    cert front-proxy /CN=front-proxy-client c
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  for n in admin kcm sched kubelet kproxy krouter; do
    cat >"$STATE/$n.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: $CONTEXT, cluster: {server: "https://$NODE_IP:26443", certificate-authority-data: $(base64 -w0 "$P/ca.crt")}}]
users: [{name: $CONTEXT-$n, user: {client-certificate-data: $(base64 -w0 "$P/$n.crt"), client-key-data: $(base64 -w0 "$P/$n.key")}}]
contexts: [{name: $CONTEXT, context: {cluster: $CONTEXT, user: $CONTEXT-$n}}]
current-context: $CONTEXT
EOF
  done
}

configs() {
  mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/kubelet" "$STATE/pv"
  containerd config default | sed \
    -e "s#^root = .*#root = \"$STATE/containerd/root\"#" \
    -e "s#^state = .*#state = \"$STATE/containerd/state\"#" \
    -e "0,/address = \"\/run\/containerd\/containerd.sock\"/s##address = \"$CTRD_SOCK\"#" \
    -e 's#sandbox_image = .*#sandbox_image = "perflab-host/pause:1"#' \
    -e 's#restrict_oom_score_adj = false#restrict_oom_score_adj = true#' \
    -e 's#stream_server_address = .*#stream_server_address = "127.0.0.1"#' \
    -e 's#stream_server_port = "0"#stream_server_port = "21010"#' \
    -e 's#bin_dir = "/opt/cni/bin"#bin_dir = "/usr/lib/cni"#' \
    -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$STATE/cni/net.d\"#" \
    >"$STATE/containerd/config.toml"
  # The sandbox lacks CAP_SYS_RESOURCE: without restrict_oom_score_adj runc fails with
  # "can't get final child's PID from pipe: EOF".
  grep -q 'restrict_oom_score_adj = true' "$STATE/containerd/config.toml" ||
    die "hostcluster: this containerd's default config has no restrict_oom_score_adj"
  cat >"$STATE/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "$CNI_NETWORK", "plugins": [
  {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
            "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}, {"type": "loopback"}]}
EOF
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $STATE/pki/ca.crt}}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$CTRD_SOCK
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 100
EOF
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kproxy.kubeconfig}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [127.0.0.0/8]
conntrack: {maxPerCore: 0}
EOF
}

# --- start ---------------------------------------------------------------------------------
start_processes() {
  local P=$STATE/pki
  ip addr add "$NODE_IP/32" dev lo

  daemon dockerd dockerd --data-root "$PERFLAB_CACHE/hostcluster-docker" \
    --exec-root "$STATE/docker/exec" --pidfile "$STATE/docker/dockerd.pid" \
    --host "unix://$DOCKER_SOCK" --bridge=none --iptables=false --ip6tables=false
  daemon etcd etcd --name perflab --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:22379 --advertise-client-urls http://127.0.0.1:22379 \
    --listen-peer-urls http://127.0.0.1:22380 --initial-advertise-peer-urls http://127.0.0.1:22380 \
    --initial-cluster perflab=http://127.0.0.1:22380 --quota-backend-bytes=2147483648
  until_ok etcd 60 curl -sf http://127.0.0.1:22379/health
  daemon kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:22379 \
    --bind-address="$NODE_IP" --secure-port=26443 --advertise-address="$NODE_IP" \
    --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --service-account-key-file="$P/sa.pub" \
    --service-account-signing-key-file="$P/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --kubelet-client-certificate="$P/apiserver-kubelet.crt" \
    --kubelet-client-key="$P/apiserver-kubelet.key" --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$P/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$P/front-proxy.crt" --proxy-client-key-file="$P/front-proxy.key" \
    --enable-aggregator-routing=true
  until_ok kube-apiserver 90 k get --raw /readyz
  daemon kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$STATE/kcm.kubeconfig" \
    --authentication-kubeconfig="$STATE/kcm.kubeconfig" --authorization-kubeconfig="$STATE/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
    --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=true \
    --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24
  daemon kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$STATE/sched.kubeconfig" \
    --authentication-kubeconfig="$STATE/sched.kubeconfig" \
    --authorization-kubeconfig="$STATE/sched.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false
  daemon containerd containerd --config "$STATE/containerd/config.toml"
  until_ok containerd 60 ctr -a "$CTRD_SOCK" version
  until_ok dockerd 60 "$DOCKER" -H "unix://$DOCKER_SOCK" info
  "$here/images.sh" build
  "$here/images.sh" load
  daemon kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
    --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --containerd="$CTRD_SOCK" # cAdvisor's own containerd client: without
  # it, container metrics have no container/pod labels (the dashboards' CPU and memory panels)
  daemon kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml"
  k create clusterrolebinding perflab-kube-proxy --clusterrole=system:node-proxier \
    --user=system:kube-proxy >/dev/null
  until_ok kubelet 120 k wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  # The NetworkPolicy controller only (no routing, no service proxy): pods on the bridge,
  # filtered in the FORWARD chain.
  daemon kube-router "$BIN/kube-router" --kubeconfig="$STATE/krouter.kubeconfig" \
    --hostname-override="$NODE_NAME" --run-firewall=true --run-router=false \
    --run-service-proxy=false --enable-cni=false --enable-ipv6=false \
    --metrics-port=0 --health-port=0
  local port
  [[ ${HOSTCLUSTER_FORWARD_PORTS:-1} == 1 ]] || return 0
  for port in "${!HOST_PORTS[@]}"; do
    if port_open 127.0.0.1 "$port"; then
      log "hostcluster: WARNING: localhost:$port is taken; use the NodePort, localhost:${HOST_PORTS[$port]}"
      continue
    fi
    daemon "port-$port" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" \
      "TCP:127.0.0.1:${HOST_PORTS[$port]}"
  done
}

start_failed() { # EXIT_STATUS
  (($1)) || return 0
  if [[ ${HOSTCLUSTER_KEEP_ON_FAILURE:-0} == 1 ]]; then
    log "hostcluster: start failed; left running for inspection (HOSTCLUSTER_KEEP_ON_FAILURE=1)"
    return 0
  fi
  log "hostcluster: start failed; stopping what was started (logs: $STATE/logs, kept in $STATE.failed)"
  rm -rf "$STATE.failed"
  cp -r "$STATE/logs" "$STATE.failed" 2>/dev/null || true
  stop_all
}

start() {
  preflight
  BIN=$(bin_dir)
  export BIN
  save_host
  # Whatever fails from here on (a command, or a `die`) leaves nothing half-started.
  trap 'start_failed $?' EXIT
  pki
  configs
  mkdir -p "$STATE/bin"
  ln -sf "$BIN/kubectl" "$STATE/bin/kubectl"
  start_processes
  "$here/addons.sh" apply
  trap - EXIT
  log "hostcluster: up. kubectl --kubeconfig $KUBECONFIG_FILE --context $CONTEXT"
}

# --- stop ----------------------------------------------------------------------------------
stop_process() { # NAME [TIMEOUT]
  local f pid deadline
  f=$(pidfile "$1")
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${2:-20}))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

remove_new_iptables() { # chains and rules that were not there before start
  local ipt t chain before=$STATE/host.before
  for ipt in iptables ip6tables; do
    for t in filter nat mangle raw; do
      # jump rules in the built-in chains first, then our chains' rules, then the chains
      local new=()
      while read -r chain; do
        grep -qx "$ipt $t chain $chain" "$before" || new+=("$chain")
      done < <("$ipt-save" -t "$t" 2>/dev/null | sed -n 's/^:\([^ ]*\).*/\1/p')
      ((${#new[@]})) || continue
      local pattern
      pattern=$(printf '%s|' "${new[@]}")
      "$ipt-save" -t "$t" | grep -E "^-A [A-Z]+ .*-j (${pattern%|})( |$)" | sed 's/^-A/-D/' |
        while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done
      for chain in "${new[@]}"; do "$ipt" -t "$t" -F "$chain" 2>/dev/null || true; done
      for chain in "${new[@]}"; do "$ipt" -t "$t" -X "$chain" 2>/dev/null || true; done
    done
  done
  # Rules added straight into built-in chains (kube-router's, the CNI masquerade).
  for ipt in iptables ip6tables; do
    for t in filter nat mangle raw; do
      "$ipt-save" -t "$t" 2>/dev/null | grep -E '^-A [A-Z]+ ' |
        grep -E 'KUBE|kube-router|CNI-|perflab' | sed 's/^-A/-D/' |
        while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done
    done
  done
}

stop_all() {
  trap - EXIT
  local -
  set +e # every step is attempted, whatever the one before it did
  need_root
  [[ -d $STATE ]] || { log "hostcluster: nothing to stop"; return 0; }
  BIN=${BIN:-$(bin_dir)}
  if running kube-apiserver && running kubelet; then
    # Let the kubelet tear pods down (CNI DEL, network namespaces, volume mounts).
    k delete namespace --all --wait=false >/dev/null 2>&1 || true
    k delete deploy,sts,ds,rs,job,pod --all -A --wait=false --grace-period=5 >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)) && [[ -n $(ctr -a "$CTRD_SOCK" -n k8s.io tasks ls -q 2>/dev/null) ]]; do
      sleep 1
    done
  fi
  local c
  for c in port-8080 port-9090 port-16686 port-8089 kube-router kube-proxy kubelet kube-scheduler \
    kube-controller-manager; do
    stop_process "$c"
  done
  if running containerd; then
    for c in $(ctr -a "$CTRD_SOCK" -n k8s.io containers ls -q 2>/dev/null); do
      ctr -a "$CTRD_SOCK" -n k8s.io tasks rm -f "$c" >/dev/null 2>&1 || true
      ctr -a "$CTRD_SOCK" -n k8s.io containers rm "$c" >/dev/null 2>&1 || true
    done
  fi
  for c in containerd kube-apiserver etcd dockerd; do stop_process "$c" 30; done
  # containerd-shim processes outlive containerd when tasks were not removed.
  pkill -KILL -f "containerd-shim.*$STATE" 2>/dev/null || true
  if [[ -x $BIN/kube-router ]]; then "$BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true; fi
  if [[ -x $BIN/kube-proxy ]]; then "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  if [[ -f $STATE/host.before ]]; then remove_new_iptables; fi
  # ipsets kube-router made
  ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)' | xargs -r -n1 ipset destroy 2>/dev/null || true
  # mounts below the state folder (pod volumes, container root filesystems, shm)
  awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    xargs -r -n1 umount -l 2>/dev/null || true
  # network namespaces the pods had, bridge, node address
  local ns
  for ns in /var/run/netns/*; do
    [[ -e $ns ]] || continue
    ns=${ns##*/}
    [[ -f $STATE/host.before ]] && grep -qx "netns $ns" "$STATE/host.before" && continue
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link delete "$CNI_BRIDGE" 2>/dev/null || true
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  ip -o link show | awk -F': ' '$2 ~ /^veth/ {sub(/@.*/, "", $2); print $2}' | while read -r l; do
    [[ -f $STATE/host.before ]] && grep -qx "link $l" "$STATE/host.before" && continue
    ip link delete "$l" 2>/dev/null || true
  done
  rm -rf /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
  # /var/lib/cni, when the run created it (containerd's CNI cache)
  if [[ -f $STATE/host.before ]] && ! grep -q '^cni /var/lib/cni' "$STATE/host.before"; then
    rm -rf /var/lib/cni
  fi
  if [[ -f $STATE/sysctl.orig ]]; then
    grep -v '=$' "$STATE/sysctl.orig" | while read -r kv; do sysctl -q -w "$kv" 2>/dev/null || true; done
  fi
  pkill -KILL -f "$STATE" 2>/dev/null || true
  rm -rf "$STATE"
  log "hostcluster: stopped; host restored"
}

status() {
  local c
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then echo "$c: running (pid $(<"$(pidfile "$c")"))"; else echo "$c: stopped"; fi
  done
  if running kube-apiserver; then
    BIN=$(bin_dir)
    k get nodes -o wide 2>/dev/null || true
  fi
}

case "${1:-}" in
  install) install ;;
  build) "$here/build.sh" >/dev/null && "$here/images.sh" build ;;
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  running) running kube-apiserver && running kubelet ;;
  snapshot) snapshot | sort ;;
  import-image) "$here/images.sh" load "$2" ;;
  kubeconfig) echo "$KUBECONFIG_FILE" ;;
  *)
    echo "usage: $0 install|build|start|stop|status|running|snapshot|kubeconfig|import-image IMAGE" >&2
    exit 2
    ;;
esac
