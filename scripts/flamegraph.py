"""`make profile SERVICE=orders SECONDS=30`: a flame graph of a running service (py-spy).

py-spy samples the service's Python stacks from outside (ptrace, `--nonblocking`: the
process is never paused), so it profiles the real thing under real load without a restart
or a code change. Run a load meanwhile (`make bench`, `make load`, an experiment) and open the
SVG in a browser, or the speedscope JSON at speedscope.app. `make bench PROFILE=1` records one
per service next to its figures, and the experiments' `--profile` one per service and phase,
with the same functions (perflab.dev.profiling).

`--target local` (the default) profiles the process `make local` started; `--target kind`
a pod of the service on the cluster `make up` installed (kind, or the host cluster with
PROVIDER=host), through an ephemeral debug container; see `profile_on_cluster`.
"""

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perflab.dev.processes import SERVICES
from perflab.dev.profiling import SUFFIX, ProfileFailed, finish, record

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PERFLAB_DATA", REPO / ".local"))


def local_pid(service: str) -> int:
    """The pid of a service `make local` started (its pid file), checked to be that service."""
    pid_file = DATA / "run" / f"{service}.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        sys.exit(f"{service} is not running locally (no live {pid_file}): start `make local`")
    if f"perflab.{service}".encode() not in cmdline:
        sys.exit(f"pid {pid} in {pid_file} is not perflab.{service}: restart `make local`")
    return pid


# --- --target kind: a pod on the cluster (kind, or the host cluster with PROVIDER=host) -------
#
# py-spy runs in an ephemeral debug container that `kubectl debug` adds to a running pod of
# the service, in the process namespace of the service's container (--target): nothing
# restarts, and py-spy stays out of the services' images (they stay lean, and carry no
# ptrace tool into production). What that container needs, and why:
#   - ptrace rights on the service's process: CAP_SYS_PTRACE, which --profile=general adds
#     (and with it the runtime's default seccomp profile allows process_vm_readv, py-spy's way
#     of reading the stacks), held by root: the pod runs as uid 10001, and a non-root process
#     loses added capabilities when it execs (Kubernetes sets no ambient ones). Sharing the
#     service's uid without the capability is enough only where Yama's ptrace_scope is 0
#     (Ubuntu, for one, sets 1). Hence the custom profile (--custom) runs the container as
#     uid 0. --profile=sysadmin (privileged: every capability, no seccomp) works too, and is
#     more than py-spy needs.
#   - somewhere to leave the profile: the volume the service's container has at /tmp (its
#     root filesystem is read-only), mounted into the debug container as well. The profile
#     is read back through the service's container (`kubectl exec ... cat`): by then the
#     debug container has exited, and an exited container cannot be exec'd into.
#   - the image on the node: `make up` builds perflab/profiler (deploy/docker/profiler.Dockerfile,
#     py-spy as pinned in constraints.txt) and loads it like the services' images; nothing is
#     pulled (--image-pull-policy=Never: the host cluster has no registry to pull from).
#   - PodSecurity admission that lets root with SYS_PTRACE in: only the "privileged" level
#     does. The lab's namespace has no pod-security labels and neither cluster sets another
#     default, so it is privileged; where a stricter level is enforced, the debug container is
#     rejected and this says how to allow it, instead of relabelling a namespace that someone
#     restricted on purpose.
# Each profile leaves its exited debug container in the pod's spec (Kubernetes cannot remove
# ephemeral containers); the next rollout replaces the pod.

RELEASE = "perflab"
PROFILER = "perflab/profiler"
# Where the debug container mounts the service's /tmp volume.
HANDOVER = "/profiles"
# Waiting reasons of a container whose image is not on the node.
IMAGE_MISSING = {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}
NO_PROCESS = 3  # FIND_AND_RECORD's exit status when the service's process is not there
# The debug container's command (sh -c, argv: the service's module, then py-spy's options):
# the service's process is the lowest pid whose argv holds its module (`python -m
# perflab.<service>`, the chart's command), not assumed to be pid 1; py-spy then takes the
# shell's place, so the container's exit status and log are py-spy's.
FIND_AND_RECORD = f"""module=$1; shift; found=
for dir in /proc/[0-9]*; do
  pid=${{dir#/proc/}}
  [ "$pid" = "$$" ] && continue
  grep -qxzF -- "$module" "$dir/cmdline" 2>/dev/null || continue
  if [ -z "$found" ] || [ "$pid" -lt "$found" ]; then found=$pid; fi
done
if [ -z "$found" ]; then
  echo "no process of $module in the target container's process namespace" >&2
  exit {NO_PROCESS}
fi
exec py-spy record --pid "$found" "$@"
"""


def profiler_image() -> str:
    """The profiler image `make up` builds: tagged with the py-spy version it holds."""
    version = re.search(r"^py-spy==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    if version is None:
        sys.exit("constraints.txt pins no py-spy version (py-spy==X)")
    return f"{PROFILER}:py-spy-{version[1]}"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message is its stderr."""


@dataclass
class Kube:
    """kubectl on the lab's context and namespace (KUBECONFIG from the environment: the host
    cluster's comes from deploy/cluster.mk)."""

    kubectl: str
    context: str
    namespace: str

    def __call__(self, *args: str, timeout: float = 60) -> bytes:
        command = [self.kubectl, "--context", self.context, "--namespace", self.namespace, *args]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError:
            sys.exit(
                f"no kubectl at {self.kubectl}: the cluster is not up (`make up`, or "
                "`make up PROVIDER=host` for the host cluster)"
            )
        except subprocess.TimeoutExpired as expired:
            raise KubectlError(f"kubectl {args[0]} timed out after {timeout:.0f}s") from expired
        if done.returncode != 0:
            raise KubectlError(done.stderr.decode(errors="replace").strip())
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conditions.get("Ready") == "True" and "deletionTimestamp" not in pod["metadata"]


def pick_pod(pods: list[dict[str, Any]], service: str, namespace: str) -> dict[str, Any]:
    """The oldest ready pod of the service (`kubectl get pods -o json`'s items)."""
    deployment = f"{RELEASE}-{service}"
    if not pods:
        sys.exit(
            f"no pod of {deployment} in namespace {namespace}: is the lab installed (`make up`)?"
        )
    ready = sorted(
        (p for p in pods if is_ready(p)),
        key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
    )
    if not ready:
        states = ", ".join(
            f"{p['metadata']['name']} ({p['status'].get('phase', 'unknown')})" for p in pods
        )
        sys.exit(f"no ready pod of {deployment} in namespace {namespace}: {states}")
    return ready[0]


def tmp_volume(pod: dict[str, Any], container: str) -> str:
    """The volume the service's container has at /tmp: where the profile is handed over."""
    name = pod["metadata"]["name"]
    for spec in pod["spec"]["containers"]:
        if spec["name"] == container:
            for mount in spec.get("volumeMounts") or []:
                if mount["mountPath"] == "/tmp":
                    return str(mount["name"])
            sys.exit(
                f"container {container} of pod {name} has no volume at /tmp to leave the profile in"
            )
    sys.exit(f"pod {name} has no container {container}")


def custom_profile(volume: str) -> dict[str, Any]:
    """kubectl debug --custom: root (to keep SYS_PTRACE, see above) and the /tmp volume."""
    return {
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
        "volumeMounts": [{"name": volume, "mountPath": HANDOVER}],
    }


def debug_command(
    pod: str, service: str, container: str, custom: str, record_options: list[str]
) -> list[str]:
    """`kubectl debug` adding the profiler container `container` to `pod`."""
    return [
        "debug", pod, "--quiet",
        "--image", profiler_image(), "--image-pull-policy", "Never",
        "--container", container, "--target", service,
        "--profile", "general", "--custom", custom,
        "--", "sh", "-c", FIND_AND_RECORD, "perflab-profile", f"perflab.{service}",
        *record_options,
    ]  # fmt: skip


def ephemeral_state(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for status in pod["status"].get("ephemeralContainerStatuses") or []:
        if status["name"] == container:
            return dict(status.get("state") or {})
    return {}


def wait_until_done(
    kube: Kube, pod: str, container: str, timeout: float, every: float
) -> dict[str, Any]:
    """The profiler container's `terminated` state, once it has one."""
    deadline = time.monotonic() + timeout
    while True:
        state = ephemeral_state(kube.json("get", "pod", pod), container)
        reason = (state.get("waiting") or {}).get("reason")
        if reason in IMAGE_MISSING:
            sys.exit(
                f"the profiler image {profiler_image()} is not on the cluster's node ({reason}): "
                "`make up` builds and loads it"
            )
        if "terminated" in state:
            return dict(state["terminated"])
        if time.monotonic() > deadline:
            sys.exit(
                f"the profiler container {container} in pod {pod} did not finish within "
                f"{timeout:.0f}s (state: {state or 'not started'}); see kubectl describe pod {pod}"
            )
        time.sleep(every)


def find_pod(kube: Kube, service: str, pod: str | None) -> dict[str, Any]:
    """The named pod, or the oldest ready pod of the service."""
    try:
        if pod:
            found = kube.json("get", "pod", pod)
            if found["status"].get("phase") != "Running":
                sys.exit(f"pod {pod} is not running ({found['status'].get('phase')})")
            return dict(found)
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={service}"
        pods = kube.json("get", "pods", "--selector", selector)["items"]
    except KubectlError as error:
        if pod and "NotFound" in str(error):
            sys.exit(f"no pod {pod} in namespace {kube.namespace}")
        sys.exit(
            f"the cluster did not answer `{kube.kubectl} --context {kube.context} get pods` "
            f"({str(error).splitlines()[-1] if str(error) else 'no message'}): is it up? "
            "`make up` (kind), `make up PROVIDER=host` (the host cluster)"
        )
    return pick_pod(pods, service, kube.namespace)


def profile_on_cluster(
    kube: Kube,
    service: str,
    seconds: int,
    out: Path,
    fmt: str = "flamegraph",
    rate: int = 100,
    pod_name: str | None = None,
    every: float = 1.0,
) -> Path:
    """Records a profile of `service` in one of its pods into `out` (see above for how)."""
    pod = find_pod(kube, service, pod_name)
    name = pod["metadata"]["name"]
    volume = tmp_volume(pod, service)
    container = f"profiler-{time.strftime('%H%M%S')}-{secrets.token_hex(2)}"
    filename = f"{container}.{SUFFIX[fmt]}"
    options = [
        "--duration", str(seconds), "--rate", str(rate), "--nonblocking",
        "--format", fmt, "--output", f"{HANDOVER}/{filename}",
    ]  # fmt: skip
    print(
        f"profiling {service} in pod {name} (debug container {container}) for {seconds}s ...",
        file=sys.stderr,
    )
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="perflab-profiler-") as custom:
        json.dump(custom_profile(volume), custom)
        custom.flush()
        try:
            kube(*debug_command(name, service, container, custom.name, options))
        except KubectlError as error:
            if "violates PodSecurity" in str(error):
                sys.exit(
                    f"namespace {kube.namespace} enforces a PodSecurity level that rejects the "
                    f"profiler (root with SYS_PTRACE; only 'privileged' allows it): {error}\n"
                    f"On a lab cluster: kubectl label namespace {kube.namespace} "
                    "pod-security.kubernetes.io/enforce=privileged --overwrite"
                )
            sys.exit(f"kubectl debug failed on pod {name}: {error}")
    finished = wait_until_done(kube, name, container, timeout=seconds + 90, every=every)
    if finished.get("exitCode") != 0:
        try:
            log = kube("logs", name, "--container", container).decode(errors="replace").strip()
        except KubectlError as error:
            log = f"(no log: {error})"
        if finished.get("exitCode") == NO_PROCESS:
            sys.exit(
                f"no perflab.{service} process visible from the debug container in pod {name}: "
                f"does the container runtime support kubectl debug --target? {log}"
            )
        reason = " ".join(str(finished.get(k, "")) for k in ("reason", "message")).strip()
        sys.exit(f"py-spy failed in pod {name} (exit {finished.get('exitCode')}, {reason}): {log}")
    in_pod = f"/tmp/{filename}"
    try:
        data = kube("exec", name, "--container", service, "--", "cat", in_pod, timeout=120)
    except KubectlError as error:
        sys.exit(f"could not read the profile {in_pod} from pod {name}: {error}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    try:
        kube("exec", name, "--container", service, "--", "rm", "-f", in_pod)
    except KubectlError as error:
        print(f"could not remove {in_pod} from pod {name}: {error}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--format", choices=sorted(SUFFIX), default="flamegraph")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--target", choices=["local", "kind"], default="local")
    cluster = parser.add_argument_group("--target kind (defaults: the variables make passes)")
    cluster.add_argument("--pod", help="the pod to profile (default: the oldest ready one)")
    cluster.add_argument("--kubectl", default=os.environ.get("KUBECTL", "bin/kubectl"))
    cluster.add_argument("--context", default=os.environ.get("KUBE_CONTEXT", "kind-perflab"))
    cluster.add_argument("--namespace", default=os.environ.get("NAMESPACE", "perflab"))
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = REPO / "results" / "profiles" / f"{args.service}-{stamp}.{SUFFIX[args.format]}"
    if args.target == "kind":
        kube = Kube(args.kubectl, args.context, args.namespace)
        profile_on_cluster(kube, args.service, args.seconds, out, args.format, args.rate, args.pod)
        print(out)
        return
    pid = local_pid(args.service)
    print(f"profiling {args.service} (pid {pid}) for {args.seconds}s ...", file=sys.stderr)
    try:
        process = record(pid, args.seconds, out, args.format, args.rate)
    except ProfileFailed as failed:
        sys.exit(str(failed))
    if finish(process, out) is None:
        sys.exit(1)
    print(out)


if __name__ == "__main__":
    main()
