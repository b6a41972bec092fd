"""PromQL pieces the dashboards and the SLO rules share: the services' selectors, rates over
$__rate_interval, quantiles from histogram buckets, error ratios that read 0 (not "No data")
while a service has traffic and no error yet."""

from __future__ import annotations

SERVICES = "gateway|orders|payments|worker"
JOBS = f'job=~"{SERVICES}"'
NOT_HEALTH = 'rpc_service!="grpc.health.v1.Health"'
# gRPC codes that are the server's fault (not NOT_FOUND, INVALID_ARGUMENT, ...).
GRPC_FAULTS = 'rpc_grpc_status_code=~"2|4|8|12|13|14|15"'
RI = "$__rate_interval"
RECORDED_BUCKETS = "job_le:server_duration_seconds_bucket:rate1m"
CPU, MEMORY = 'resource="cpu"', 'resource="memory"'
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def rate(selector: str, window: str = RI) -> str:
    return f"rate({selector}[{window}])"


def sum_rate(selector: str, by: str = "") -> str:
    """`sum by (by) (rate(selector[$__rate_interval]))`."""
    return f"sum by ({by}) ({rate(selector)})" if by else f"sum({rate(selector)})"


def quantile(q: float, buckets: str, by: str = "") -> str:
    """histogram_quantile over `sum by (le, by) (rate(buckets[$__rate_interval]))`."""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) ({rate(buckets)}))"


def with_zero(errors: str, traffic: str) -> str:
    """`errors`, or 0 for each series of `traffic` that has no error series yet."""
    return f"({errors} or 0 * {traffic})"


def error_ratio(bad: str, every: str, by: str) -> str:
    """Rate of `bad` over rate of `every`, by `by`; 0 where `every` has traffic and no error."""
    total = sum_rate(every, by)
    return f"{with_zero(sum_rate(bad, by), total)} / {total}"


def server_buckets_of(job: str) -> str:
    """The latency buckets of what `job` serves: HTTP, gRPC or Kafka messages (only one exists
    per service, so `or` picks it)."""
    return (
        f"sum by (le) ({rate(f'http_request_duration_highr_seconds_bucket{{{job}}}')})"
        f" or sum by (le) ({rate(f'rpc_server_duration_seconds_bucket{{{job}, {NOT_HEALTH}}}')})"
        f" or sum by (le) ({rate(f'messaging_process_duration_seconds_bucket{{{job}}}')})"
    )
