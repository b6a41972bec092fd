"""Flame graphs of running local services with py-spy, for `make profile`, `make bench
PROFILE=1` and the experiments' `--profile` alike.

py-spy samples a process's Python stacks from outside (ptrace, `--nonblocking`: the process is
never paused), so it profiles the real thing under real load without a restart or a code
change. It does take CPU of its own, on the same machine.
"""

import shutil
import subprocess
import sys
from pathlib import Path

SUFFIX = {"flamegraph": "svg", "speedscope": "speedscope.json", "raw": "txt"}


class ProfileFailed(Exception):
    """py-spy could not record a profile; the message says why (its own words if it ran)."""


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise ProfileFailed(
            "py-spy is not installed: `make venv` installs it (requirements-dev.txt)"
        )
    return found


def record(
    pid: int, seconds: int, out: Path, fmt: str = "flamegraph", rate: int = 100
) -> subprocess.Popen[bytes]:
    """Starts py-spy on `pid` for `seconds`; the caller waits for the returned process
    (`collect` or `finish`). Raises ProfileFailed when py-spy is not installed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--duration", str(seconds),
         "--rate", str(rate), "--nonblocking", "--format", fmt, "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def collect(process: subprocess.Popen[bytes], out: Path) -> Path:
    """Waits for py-spy; the profile's path, or ProfileFailed with py-spy's reason."""
    _, err = process.communicate()
    if process.returncode != 0 or not out.exists():
        reason = err.decode(errors="replace").strip()
        raise ProfileFailed(reason or f"py-spy exited with {process.returncode}, no {out.name}")
    return out


def finish(process: subprocess.Popen[bytes], out: Path) -> Path | None:
    """Waits for py-spy; the profile's path, or None (with py-spy's reason) when it failed."""
    try:
        return collect(process, out)
    except ProfileFailed as failed:
        print(f"py-spy failed for {out.name}: {failed}", file=sys.stderr)
        return None
