"""Configuration defined once (perflab.dev.processes, perflab.common.settings) and copied only
where the code cannot import it: a shell script, a script that runs on a machine without the
venv, the load tests (which only speak HTTP). Each copy is checked here."""

import ast
import re
from pathlib import Path

from perflab.dev.processes import SERVICES

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
