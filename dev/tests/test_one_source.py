"""Configuration defined once (perflab.dev.processes, perflab.common.settings) and copied only
where the code cannot import it: a shell script, a script that runs on a machine without the
venv, the load tests (which only speak HTTP). Each copy is checked here."""

import ast
import re
from pathlib import Path

from perflab.common import settings
from perflab.dev.processes import SERVICES, Ports

REPO = Path(__file__).resolve().parents[2]
NAMES = sorted(SERVICES)


def test_every_service_folder_is_a_service_and_every_service_has_one() -> None:
    folders = {p.parent.name for p in REPO.glob("services/*/Dockerfile")}
    assert folders == set(SERVICES)


def test_the_copies_of_the_services_list_agree() -> None:
    smoke = ast.parse((REPO / "deploy/scripts/smoke.py").read_text())
    (smoke_services,) = [
        ast.literal_eval(node.value)
        for node in smoke.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "SERVICES" for t in node.targets)
    ]
    assert sorted(smoke_services) == NAMES
    up = re.search(r"^for svc in ([a-z ]+); do", (REPO / "deploy/scripts/up.sh").read_text(), re.M)
    assert up is not None and sorted(up[1].split()) == NAMES
    usage = re.search(r"usage: make profile SERVICE=([a-z|]+)", (REPO / "Makefile").read_text())
    assert usage is not None and sorted(usage[1].split("|")) == NAMES
    soak = re.search(r'job=~"([a-z|]+)"', (REPO / "loadtests/soak_verdict.py").read_text())
    assert soak is not None and sorted(soak[1].split("|")) == NAMES


def _shell_defaults(path: str) -> dict[str, str]:
    """NAME=${NAME:-default} assignments of a shell script."""
    text = (REPO / path).read_text()
    return dict(re.findall(r"^(\w+)=\$\{\1:-([^}]*)\}", text, re.MULTILINE))


def test_the_shell_scripts_use_the_local_ports_of_the_settings() -> None:
    lib = _shell_defaults("scripts/lib.sh")
    assert (lib["POSTGRES_PORT"], lib["REDIS_PORT"], lib["KAFKA_PORT"]) == (
        str(settings.LOCAL_POSTGRES_PORT),
        str(settings.LOCAL_REDIS_PORT),
        str(settings.LOCAL_KAFKA_PORT),
    )
    ports = Ports()
    prometheus = _shell_defaults("scripts/prometheus-config.sh")
    assert {
        service: prometheus[f"PROM_TARGET_{service.upper()}"] for service in SERVICES
    } == ports.metrics_targets()
    banner = (REPO / "scripts/local-services.sh").read_text()
    lines = [
        rf"API \(gateway\)\s+http://127\.0\.0\.1:{ports.gateway}/api/",
        rf"orders gRPC\s+127\.0\.0\.1:{ports.orders}\s+metrics "
        rf"http://127\.0\.0\.1:{ports.orders_metrics}/",
        rf"payments gRPC\s+127\.0\.0\.1:{ports.payments}\s+metrics "
        rf"http://127\.0\.0\.1:{ports.payments_metrics}/",
        rf"worker\s+metrics http://127\.0\.0\.1:{ports.worker_metrics}/",
    ]
    assert [line for line in lines if not re.search(line, banner)] == []


def test_the_load_tests_target_the_local_gateway() -> None:
    from loadtests.scenario import TARGETS

    assert TARGETS["local"] == f"http://{settings.LOCAL_HOST}:{settings.LOCAL_GATEWAY_PORT}"
