"""perflab.dev is development tooling: no service needs it, so no wheel or image holds it."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_service_imports_the_dev_tooling() -> None:
    importing = [
        str(path.relative_to(REPO))
        for path in REPO.glob("services/*/src/**/*.py")
        if re.search(r"^\s*(from|import)\s+perflab\.dev\b", path.read_text(), re.MULTILINE)
    ]
    assert importing == []


def test_the_services_wheels_hold_only_service_code() -> None:
    # Each image installs the wheels of services/common and services/<name> (src/perflab/*).
    packages = {path.name for path in REPO.glob("services/*/src/perflab/*") if path.is_dir()}
    assert packages == {"common", "contracts", "gateway", "orders", "payments", "worker"}
