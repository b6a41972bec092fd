"""`--profile`: a flame graph of every service the experiment runs, recorded during each
phase's measured window (not its warm-up) into `phases/<NN-arm>/profiles/<service>.svg`, with
py-spy (perflab.dev.profiling, as `make profile` and `make bench PROFILE=1`).

py-spy samples from outside the services (`--nonblocking`: never paused), but it takes CPU of
its own on the machine the services and the load generator share, so a profiled run's figures
are not comparable with an unprofiled run's; meta.json says `profiled: true` and the report
says so. A profile that cannot be recorded (py-spy missing, no ptrace permission) does not stop
the experiment: its reason is printed once and kept in meta.json (`profile_failures`).
Local target only for now: on kind the services run in pods, out of this machine's reach.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from perflab.dev import profiling

RATE_HZ = 100  # samples per second: fine enough for a phase of 30 s and more, modest in CPU
FORMAT = "flamegraph"

Record = Callable[[int, int, Path, str, int], subprocess.Popen[bytes]]
Collect = Callable[[subprocess.Popen[bytes], Path], Path]


def local_only(target: str) -> str | None:
    """Why --profile cannot run on `target`, or None."""
    if target == "local":
        return None
    return (
        f"--profile is local-only for now, not on {target}: profiling the cluster's pods needs "
        "py-spy in the images and the SYS_PTRACE capability (not built yet). Run the "
        "experiment with --target local to get its flame graphs."
    )


class Profiler:
    """The flame graphs of one run: started with each measured phase, collected after it.

    `record` and `collect` are perflab.dev.profiling's; tests pass fakes."""

    def __init__(
        self,
        record: Record = profiling.record,
        collect: Collect = profiling.collect,
        rate: int = RATE_HZ,
    ) -> None:
        self._record = record
        self._collect = collect
        self.rate = rate
        # phase tag -> service -> the profile's path, relative to the results folder
        self.recorded: dict[str, dict[str, str]] = {}
        self.failures: list[str] = []  # each distinct reason once, in the order they came

    @contextlib.contextmanager
    def phase(self, tag: str, pids: Mapping[str, int], seconds: float, out: Path) -> Iterator[None]:
        """Profiles each of `pids` (service -> pid) for `seconds` while the body runs the
        phase's load; the files go to out/phases/<tag>/profiles/<service>.svg."""
        folder = out / "phases" / tag / "profiles"
        suffix = profiling.SUFFIX[FORMAT]
        running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for service, pid in pids.items():
            path = folder / f"{service}.{suffix}"
            try:
                process = self._record(pid, max(1, round(seconds)), path, FORMAT, self.rate)
            except (profiling.ProfileFailed, OSError) as failed:
                self._failed(service, tag, failed)
            else:
                running[service] = (process, path)
        try:
            yield
        except BaseException:  # interrupted: no one waits for these profiles
            for process, _ in running.values():
                process.kill()
                process.wait()
            raise
        for service, (process, path) in running.items():
            try:
                recorded = self._collect(process, path)
            except profiling.ProfileFailed as failed:
                self._failed(service, tag, failed)
            else:
                self.recorded.setdefault(tag, {})[service] = str(recorded.relative_to(out))
        if self.recorded.get(tag):
            print(f"   flame graphs of {', '.join(self.recorded[tag])} in {folder}", flush=True)

    def _failed(self, service: str, tag: str, failed: Exception) -> None:
        # py-spy's first line says it ("Error: Permission Denied: ..."); a backtrace may follow
        reason = (str(failed).strip().splitlines() or [type(failed).__name__])[0]
        if reason in self.failures:
            return
        self.failures.append(reason)
        print(
            f"   WARNING: no flame graph of {service} in phase {tag}: {reason}. The experiment "
            "goes on; this reason is not repeated (meta.json keeps it).",
            flush=True,
        )

    def meta(self) -> dict[str, object]:
        """What meta.json keeps of the profiles."""
        return {
            "profiled": True,
            "profile_rate_hz": self.rate,
            "profiles": self.recorded,
            "profile_failures": self.failures,
        }
