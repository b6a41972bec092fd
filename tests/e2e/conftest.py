"""Fixtures of the end-to-end tests around the isolated stack (``stack``, in the root
conftest.py): a Prometheus of their own that scrapes it, the local Jaeger, database
connections and log tails."""

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from perflab.dev.processes import ServiceProcesses, free_port
from perflab.dev.waiting import until


@pytest.fixture(scope="session")
async def prometheus(
    stack: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A Prometheus that scrapes this stack every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run scripts/install-infra.sh")
    workdir = tmp_path_factory.mktemp("prometheus")
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n"
        for job, target in stack.config.ports.metrics_targets().items()
    )
    config = workdir / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n{jobs}")
    port = free_port()
    log = workdir / "log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        if process.returncode is not None:
            pytest.fail(f"prometheus exited with {process.returncode}; see {log}")
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{url}/-/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await until(ready, f"prometheus to be ready on {url} (log: {log})")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


@pytest.fixture(scope="session")
def jaeger_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('JAEGER_UI_PORT', '16686')}"


@pytest.fixture
async def orders_pg(stack: ServiceProcesses) -> AsyncIterator[asyncpg.Connection]:
    conn = await _connect(stack, stack.config.orders_db)
    yield conn
    await conn.close()


@pytest.fixture
async def payments_pg(stack: ServiceProcesses) -> AsyncIterator[asyncpg.Connection]:
    conn = await _connect(stack, stack.config.payments_db)
    yield conn
    await conn.close()


async def _connect(stack: ServiceProcesses, database: str) -> asyncpg.Connection:
    infra = stack.config.infra
    return await asyncpg.connect(
        host=infra.host, port=int(infra.postgres), user="perflab", database=database
    )


def log_tail(stack: ServiceProcesses, service: str, lines: int = 30) -> str:
    path: Path = stack.log_dir / f"{service}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
