"""The chart against the code: the environment it gives each service is what the service's
Settings class reads (and parses), the ports it probes and scrapes are the ones the process
binds, the commands it runs exist, and each service actually starts under that environment
and answers its probes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from perflab.dev.processes import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "perflab"
SCENARIOS = ["default", *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
# Read by the OpenTelemetry SDK itself, or set from the downward API for it.
NOT_SETTINGS = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    "POD_NAME",
    "POD_NAMESPACE",
}


def settings_class(service: str) -> Any:
    try:
        return importlib.import_module(f"perflab.{service}.settings").Settings
    except ImportError as exc:
        pytest.skip(
            f"perflab.{service}.settings is not importable "
            f"(is the venv installed? `make venv`): {exc}"
        )


def service_env(rendered, service: str) -> dict[str, str]:
    """The environment the chart gives the service's container (ConfigMap, Secret, env)."""
    deployment = rendered.get("Deployment", f"perflab-{service}")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            env.update(rendered.get("Secret", source["secretRef"]["name"])["stringData"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<from the downward API>")
    return env


def container_ports(rendered, service: str) -> dict[str, int]:
    container = rendered.get("Deployment", f"perflab-{service}")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_the_chart_sets_is_a_setting(rendered_scenarios, scenario, service):
    fields = {name.upper() for name in settings_class(service).model_fields}
    env = service_env(rendered_scenarios[scenario], service)
    unknown = set(env) - fields - NOT_SETTINGS
    assert not unknown, (
        f"{service} has no setting for {sorted(unknown)} (typo, or a setting that was renamed)"
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("service", SERVICES)
def test_required_settings_are_provided_and_parse(
    rendered_scenarios, scenario, service, monkeypatch
):
    settings = settings_class(service)
    env = service_env(rendered_scenarios[scenario], service)
    required = {
        name.upper() for name, field in settings.model_fields.items() if field.is_required()
    }
    assert required <= set(env), f"{service} needs {sorted(required - set(env))}"
    for name in list(os.environ):
        if name.lower() in settings.model_fields:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parsed = settings()  # raises if the chart's strings do not parse (ints, floats, bools)
    assert parsed.service_name == service


@pytest.mark.parametrize("service", SERVICES)
def test_the_process_binds_the_ports_the_chart_probes_and_scrapes(rendered_default, service):
    rendered = rendered_default
    env = service_env(rendered, service)
    ports = container_ports(rendered, service)
    container = rendered.get("Deployment", f"perflab-{service}")["spec"]["template"]["spec"][
        "containers"
    ][0]
    # Every port the chart declares is the one the service's settings say it binds, on all
    # interfaces.
    bind_vars = {"http": "HTTP_PORT", "grpc": "GRPC_PORT", "metrics": "METRICS_PORT"}
    for name, number in ports.items():
        assert env[bind_vars[name]] == str(number), (service, name)
    host_var = "GRPC_HOST" if "grpc" in ports else "HTTP_HOST"
    assert env[host_var] == "0.0.0.0"
    # The probes: gRPC health on the gRPC port, or HTTP on the HTTP port.
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container[kind]
        if "grpc" in ports:
            assert probe["grpc"] == {"port": int(env["GRPC_PORT"]), "service": ""}
        else:
            assert ports[probe["httpGet"]["port"]] == int(env["HTTP_PORT"])
    # Prometheus scrapes METRICS_PORT (gRPC services) or the HTTP port (gateway, worker).
    monitor = rendered.get("ServiceMonitor", f"perflab-{service}")
    service_port = next(
        p
        for p in rendered.get("Service", f"perflab-{service}")["spec"]["ports"]
        if p["name"] == monitor["spec"]["endpoints"][0]["port"]
    )
    scraped = ports[service_port["targetPort"]]
    assert scraped == int(env["METRICS_PORT" if "grpc" in ports else "HTTP_PORT"])
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.parametrize("service", SERVICES)
def test_shutdown_fits_in_the_termination_grace_period(rendered_default, service, lib):
    env = service_env(rendered_default, service)
    spec = rendered_default.get("Deployment", f"perflab-{service}")["spec"]["template"]["spec"]
    pre_stop = (
        spec["containers"][0]
        .get("lifecycle", {})
        .get("preStop", {})
        .get("sleep", {})
        .get("seconds", 0)
    )
    grace = float(env.get("SHUTDOWN_GRACE_SECONDS", 0))
    assert pre_stop + grace + 5 <= spec["terminationGracePeriodSeconds"]


def test_every_command_the_chart_runs_exists(rendered_default):
    modules = set()
    for workload in rendered_default.workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            command = container.get("command", [])
            if command[:2] == ["python", "-m"]:
                modules.add((command[2], tuple(container.get("args", []))))
    assert {m for m, _ in modules} >= {f"perflab.{s}" for s in SERVICES} | {
        "perflab.orders.migrate",
        "perflab.payments.migrate",
        "perflab.orders.seed",
        "perflab.common.kafka_admin",
    }
    for module, args in sorted(modules):
        assert importlib.util.find_spec(module) is not None, f"no module {module}"
        if args:  # the job's arguments parse (argparse stops at --help before doing anything)
            result = subprocess.run(
                [sys.executable, "-m", module, *args, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, f"{module} {' '.join(args)}: {result.stderr}"


# --- each service starts under the chart's environment ---------------------------------------


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never answers: the dependencies (Kafka,
    PostgreSQL, Redis, the other services) look like a cluster whose pods are still starting,
    so the service under test must come up and answer its probes anyway."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield s.getsockname()[1]


def local_env(chart_env: dict[str, str], dead: int) -> tuple[dict[str, str], dict[str, int]]:
    """The chart's environment with cluster addresses pointed at a silent local port and the
    service's own ports moved to free ones (the chart's may be taken on this machine)."""
    env = dict(chart_env)
    remap = {}
    for var in ("HTTP_PORT", "GRPC_PORT", "METRICS_PORT"):
        if var in env:
            remap[var] = free_port()
            env[var] = str(remap[var])
    for var in ("ORDERS_ADDR", "PAYMENTS_ADDR"):
        if var in env:
            env[var] = f"127.0.0.1:{dead}"
    if "KAFKA_BOOTSTRAP_SERVERS" in env:
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{dead}"
    if "REDIS_URL" in env:
        env["REDIS_URL"] = f"redis://127.0.0.1:{dead}/0"
    if "DATABASE_URL" in env:
        env["DATABASE_URL"] = f"postgresql+asyncpg://perflab:perflab@127.0.0.1:{dead}/x"
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{dead}"
    env["POD_NAME"] = env["POD_NAMESPACE"] = "test"
    env["OTEL_RESOURCE_ATTRIBUTES"] = "k8s.pod.name=test"
    return env, remap


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def grpc_health(port: int) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        except grpc.RpcError:
            return None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_starts_under_the_chart_environment(rendered_default, service, silent_port):
    settings_class(service)  # skips when the services are not installed
    container = rendered_default.get("Deployment", f"perflab-{service}")["spec"]["template"][
        "spec"
    ]["containers"][0]
    env, ports = local_env(service_env(rendered_default, service), silent_port)
    base = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    }
    command = [sys.executable if part == "python" else part for part in container["command"]]
    process = subprocess.Popen(
        command,
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        answered: dict[str, Any] = {}
        while time.monotonic() < deadline and process.poll() is None:
            if "GRPC_PORT" in ports:
                answered["health"] = grpc_health(ports["GRPC_PORT"])
                answered["metrics"] = http_status(
                    f"http://127.0.0.1:{ports['METRICS_PORT']}/metrics"
                )
                if answered["health"] == "SERVING" and answered["metrics"] == 200:
                    break
            else:
                port = ports["HTTP_PORT"]
                for kind in ("livenessProbe", "readinessProbe"):
                    answered[kind] = http_status(
                        f"http://127.0.0.1:{port}{container[kind]['httpGet']['path']}"
                    )
                answered["metrics"] = http_status(f"http://127.0.0.1:{port}/metrics")
                # Readiness may say "not ready" (its dependencies are unreachable here), but
                # it must be served.
                if (
                    answered["livenessProbe"] == 200
                    and answered["metrics"] == 200
                    and answered["readinessProbe"] in (200, 503)
                ):
                    break
            time.sleep(0.5)
        alive = process.poll() is None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        output = process.stdout.read() if process.stdout else ""
    assert alive, (
        f"{service} exited with {process.returncode} under the chart's environment:\n"
        f"{output[-3000:]}"
    )
    if "GRPC_PORT" in ports:
        assert answered == {"health": "SERVING", "metrics": 200}, f"{answered}\n{output[-3000:]}"
    else:
        assert answered["livenessProbe"] == 200 and answered["metrics"] == 200, (
            f"{answered}\n{output[-3000:]}"
        )
        assert answered["readinessProbe"] in (200, 503), f"{answered}\n{output[-3000:]}"
