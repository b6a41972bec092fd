"""autoscaling: a spike against one fixed gateway replica vs the HorizontalPodAutoscaler.
Cluster only (`TARGET=kind`): the local stack runs one process per service."""

from experiments.cluster import RELEASE, ClusterContext
from experiments.framework import Arm, Experiment, LoadProfile, Target
from experiments.phase_metrics import PhaseMetrics

BURN_MS = 15  # cpu_burn_ms: CPU each gateway request burns, so the spike is CPU-bound
RATE = 60.0
DEPLOYMENT = f"{RELEASE}-gateway"


def fixed(ctx: Target) -> None:
    """One replica, and the HPA may not add any (min = max = 1)."""
    assert isinstance(ctx, ClusterContext)  # the experiment runs on kind only
    ctx.scale_limits("gateway", 1, 1)
    ctx.wait_replicas("gateway", 1)


def autoscaled(ctx: Target) -> None:
    """Starts from one replica like the fixed arm, then lets the HPA scale up to its max."""
    assert isinstance(ctx, ClusterContext)
    fixed(ctx)
    ctx.scale_limits("gateway", 1, ctx.original_max_replicas("gateway"))


def resources(pm: PhaseMetrics) -> dict[str, float]:
    ready = "kube_deployment_status_replicas_ready"
    scaled = [
        s.t - pm.before.t for s in pm.series if s.value("kube", ready, deployment=DEPLOYMENT) > 1
    ]
    return {
        "replicas_max": pm.gauge("kube", ready, "max", deployment=DEPLOYMENT),
        "replicas_mean": pm.gauge("kube", ready, "mean", deployment=DEPLOYMENT),
        "scale_out_s": min(scaled) if scaled else float("nan"),
        "gateway_cpu_cores": pm.rate("gateway", "process_cpu_seconds_total"),
    }


def spike(duration_s: float) -> LoadProfile:
    return LoadProfile(
        journeys={"product": 1},
        rate=RATE,
        duration_s=duration_s,
        warmup_s=0,  # the spike starts on one idle replica
        max_vus=400,
        focus="/api/products/{id}",
    )


EXPERIMENT = Experiment(
    name="autoscaling",
    title="spike against a fixed replica vs the HPA (cluster only)",
    question="Does the HorizontalPodAutoscaler keep latency within the SLO during a spike that "
    "one gateway replica cannot absorb, and how long does scaling out take?",
    hypothesis=f"At {RATE:g} reads/s with {BURN_MS} ms of CPU each, one replica (1 CPU limit) "
    "is saturated: latency grows for the whole spike and requests are shed. With the HPA the "
    "gateway scales out within about a minute (metrics-server and HPA sync periods plus pod "
    "start); p95 is high during that minute and then recovers.",
    change="the gateway's HPA held at 1..1 replicas (A) vs its chart range 1..max (B); every "
    "phase starts from one replica",
    arms=[
        Arm("A", "fixed: 1 replica", before_phase=fixed),
        Arm("B", "HPA", before_phase=autoscaled),
    ],
    services=("orders", "gateway"),
    base_faults={"cpu_burn_ms": BURN_MS},
    load=spike(180),
    quick_load=spike(60),
    pin_replicas=False,
    resources=resources,
    headline=(
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "goodput_rps",
        "error_rate",
        "replicas_max",
        "scale_out_s",
        "gateway_cpu_cores",
    ),
    targets=("kind",),
    skip_reason=lambda target: (
        "autoscaling needs the kind cluster (make up) and its HPA: the local stack runs one "
        "process per service and cannot scale out, so it would measure nothing"
        if target != "kind"
        else None
    ),
    limits=(
        "Replicas are sampled from kube-state-metrics through Prometheus every 5 s (itself "
        "scraped every 10-30 s): scale_out_s is accurate to about half a minute.",
        "kind runs every pod on one node: added replicas share the laptop's cores with "
        "everything else, so scaling out helps only as far as the node has idle CPU.",
        f"The CPU per request is the cpu_burn_ms fault ({BURN_MS} ms), not real work.",
        "On the machine this lab is built on it runs on the host cluster (PROVIDER=host): one "
        "2-core node shared by the control plane, the infrastructure and the load generator.",
    ),
)
