"""The deployment scripts: shellcheck-clean, and `make up` without Docker says so in one
sentence instead of failing somewhere later."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    [
        *(ROOT / "deploy/scripts").glob("*.sh"),
        *(ROOT / "deploy/hostcluster").glob("*.sh"),
        *(ROOT / "deploy/hostcluster/images").glob("*.sh"),
        *(ROOT / "scripts").glob("*.sh"),
    ]
)


def test_scripts_pass_shellcheck():
    # scripts/install-infra.sh (run by make test) installs it: a missing linter is a failure.
    assert shutil.which("shellcheck"), "shellcheck is missing: run scripts/install-infra.sh"
    result = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_up_without_docker_says_so_in_one_sentence(tmp_path):
    # A PATH with bash and coreutils but no docker.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "env", "dirname", "cat", "make", "awk", "sh"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    result = subprocess.run(
        ["make", "--no-print-directory", "up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bindir)},
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = [
        line for line in result.stderr.splitlines() if not line.startswith(("make: ", "make["))
    ]
    assert len(lines) == 1 and "needs Docker" in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
