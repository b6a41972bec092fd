"""Runs the four services as plain processes against the local infrastructure.

`make local` uses the CLI (`python -m perflab.dev.processes up|down|status`), which
detaches the services and keeps pid files and logs under the data directory. The end-to-end
tests and the experiments use `ServiceProcesses` directly to run an isolated copy (own
databases, topic prefix, Redis prefix and ports) that they can kill and restart.
"""

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from perflab.common.settings import (
    LOCAL_ADMIN_PORT,
    LOCAL_GATEWAY_PORT,
    LOCAL_HOST,
    LOCAL_KAFKA_PORT,
    LOCAL_ORDERS_PORT,
    LOCAL_PAYMENTS_PORT,
    LOCAL_POSTGRES_PORT,
    LOCAL_REDIS_PORT,
)

# The services, in start order (each after what it calls). The one list: the tests, experiments
# and scripts import it; dev/tests/test_one_source.py checks it against services/*/ and the
# copies that cannot import it (shell scripts, the cluster smoke test, the load tests).
SERVICES = ("payments", "orders", "worker", "gateway")


@dataclass
class Infra:
    """Where the infrastructure listens. Defaults are the ports of `scripts/local-infra.sh`."""

    postgres: str = field(default_factory=lambda: _env("POSTGRES_PORT", LOCAL_POSTGRES_PORT))
    redis: str = field(default_factory=lambda: _env("REDIS_PORT", LOCAL_REDIS_PORT))
    kafka: str = field(default_factory=lambda: _env("KAFKA_PORT", LOCAL_KAFKA_PORT))
    otlp_grpc: str = field(default_factory=lambda: _env("JAEGER_OTLP_GRPC_PORT", "14317"))
    host: str = LOCAL_HOST

    def database_url(self, database: str) -> str:
        return f"postgresql+asyncpg://perflab@{self.host}:{self.postgres}/{database}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka}"


def _env(name: str, default: object) -> str:
    return os.environ.get(name, str(default))


@dataclass
class Ports:
    """Where the services listen (the metrics ports only here: their settings default to the
    containers' 9464)."""

    gateway: int = LOCAL_GATEWAY_PORT
    orders: int = LOCAL_ORDERS_PORT
    payments: int = LOCAL_PAYMENTS_PORT
    orders_metrics: int = 19101
    payments_metrics: int = 19102
    worker_metrics: int = 19103
    admin: int = LOCAL_ADMIN_PORT

    @classmethod
    def free(cls) -> "Ports":
        """Ports the OS says are free right now (for isolated test stacks)."""
        return cls(*(free_port() for _ in range(7)))

    def metrics_targets(self) -> dict[str, str]:
        return {
            "gateway": f"127.0.0.1:{self.gateway}",
            "orders": f"127.0.0.1:{self.orders_metrics}",
            "payments": f"127.0.0.1:{self.payments_metrics}",
            "worker": f"127.0.0.1:{self.worker_metrics}",
        }


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def missing_infra(infra: Infra, kafka: bool = True) -> list[str]:
    """The infrastructure that does not answer: PostgreSQL, Redis and (with kafka) Kafka."""
    needed = [("PostgreSQL", infra.postgres), ("Redis", infra.redis)]
    needed += [("Kafka", infra.kafka)] if kafka else []
    return [name for name, port in needed if not port_open(infra.host, int(port))]


# Below Linux's ephemeral range (32768-60999): a client retrying a port nobody listens on can
# otherwise connect to itself from that very port (TCP self-connect) and hold it, so the
# restarted server cannot bind it. That is why every local port of perflab is below 32768.
_PORT_RANGE = (20000, 32000)


def free_port() -> int:
    """A port free right now, outside the ephemeral range (see above)."""
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


@dataclass
class StackConfig:
    infra: Infra = field(default_factory=Infra)
    ports: Ports = field(default_factory=Ports)
    orders_db: str = "orders"
    payments_db: str = "payments"
    topic_prefix: str = ""
    redis_prefix: str = ""
    consumer_group: str = "perflab-worker"
    # Share of traces kept: 10 % by default, so load tests and experiments measure the
    # services rather than the span exporter; TRACE_SAMPLE=1 keeps every trace (demos, tests
    # that look traces up).
    trace_sample: str = field(default_factory=lambda: _env("TRACE_SAMPLE", "0.1"))
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def env(self, service: str) -> dict[str, str]:
        i, p = self.infra, self.ports
        common = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{i.host}:{i.otlp_grpc}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": self.trace_sample,
            "KAFKA_BOOTSTRAP_SERVERS": i.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "FAULTS_REDIS_URL": i.redis_url,
            "FAULTS_KEY": f"{self.redis_prefix}faults" if self.redis_prefix else "perflab:faults",
        }
        own = {
            "orders": {
                "DATABASE_URL": i.database_url(self.orders_db),
                "GRPC_PORT": str(p.orders),
                "METRICS_PORT": str(p.orders_metrics),
                "PAYMENTS_ADDR": f"127.0.0.1:{p.payments}",  # PAYMENT_MODE=sync
            },
            "payments": {
                "DATABASE_URL": i.database_url(self.payments_db),
                "GRPC_PORT": str(p.payments),
                "METRICS_PORT": str(p.payments_metrics),
            },
            "worker": {
                "ORDERS_ADDR": f"127.0.0.1:{p.orders}",
                "PAYMENTS_ADDR": f"127.0.0.1:{p.payments}",
                "HTTP_PORT": str(p.worker_metrics),
                "CONSUMER_GROUP": self.consumer_group,
            },
            "gateway": {
                "HTTP_PORT": str(p.gateway),
                "ORDERS_ADDR": f"127.0.0.1:{p.orders}",
                "REDIS_URL": i.redis_url,
                "REDIS_KEY_PREFIX": self.redis_prefix,
                "ADMIN_PORT": str(p.admin),
            },
        }[service]
        return {**common, **own, **self.extra_env.get(service, {})}


class ServiceProcesses:
    """The services of one stack as child processes, each logging to log_dir/<service>.log."""

    def __init__(self, config: StackConfig, log_dir: Path):
        self.config = config
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def prepare(self, products: int = 10_000, partitions: int = 6) -> None:
        """Migrations, catalog seed and topics: everything the services expect to exist."""
        self.run_module("perflab.orders.migrate", "orders")
        self.run_module("perflab.payments.migrate", "payments")
        self.run_module("perflab.orders.seed", "orders", "--products", str(products))
        self.run_module(
            "perflab.common.kafka_admin", "orders", "create-topics", "--partitions", str(partitions)
        )

    def run_module(self, module: str, service: str, *args: str, quiet: bool = False) -> None:
        """`python -m module args` with `service`'s environment (quiet: output captured)."""
        env = {**os.environ, **self.config.env(service)}
        subprocess.run(
            [sys.executable, "-m", module, *args], env=env, check=True, capture_output=quiet
        )

    def start(self, service: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{service}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", f"perflab.{service}"],
            env={**os.environ, **self.config.env(service)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal does not reach it
        )
        self.processes[service] = process
        return process

    def start_all(self, timeout: float = 60) -> None:
        for service in SERVICES:
            self.start(service)
            self.wait_ready(service, timeout)

    def wait_ready(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes.get(service)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{service} exited with {process.returncode}; see {self.log_dir}/{service}.log"
                )
            if is_ready(service, self.config.ports):
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"{service} not ready after {timeout}s; see {self.log_dir}/{service}.log"
        )

    def stop(self, service: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> int:
        process = self.processes.pop(service)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self) -> None:
        for service in reversed(SERVICES):
            if service in self.processes:
                self.stop(service)


def is_ready(service: str, ports: Ports) -> bool:
    if service in ("gateway", "worker"):
        port = ports.gateway if service == "gateway" else ports.worker_metrics
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False
    port = ports.orders if service == "orders" else ports.payments
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


# --- CLI for `make local` ----------------------------------------------------------------


def _pid_file(run_dir: Path, service: str) -> Path:
    return run_dir / f"{service}.pid"


def _alive(pid: int, service: str) -> bool:
    """True when pid runs and is our service (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"perflab.{service}".encode() in cmdline


def _running(run_dir: Path) -> Mapping[str, int]:
    found = {}
    for service in SERVICES:
        with contextlib.suppress(OSError, ValueError):
            pid = int(_pid_file(run_dir, service).read_text())
            if _alive(pid, service):
                found[service] = pid
    return found


def cli_up(data_dir: Path, products: int) -> None:
    run_dir, log_dir = data_dir / "run", data_dir / "logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = ServiceProcesses(StackConfig(), log_dir)
    down = missing_infra(stack.config.infra)
    if down:
        sys.exit(f"{', '.join(down)} not running: start them with scripts/local-infra.sh up")
    running = _running(run_dir)
    if len(running) < len(SERVICES):
        print("preparing: migrations, catalog seed, topics", file=sys.stderr)
        stack.prepare(products=products)
    for service in SERVICES:
        if service in running:
            print(f"{service:9} already running (pid {running[service]})", file=sys.stderr)
            continue
        process = stack.start(service)
        _pid_file(run_dir, service).write_text(str(process.pid))
        stack.wait_ready(service)
        print(f"{service:9} ready (pid {process.pid})", file=sys.stderr)


def cli_down(data_dir: Path) -> None:
    run_dir = data_dir / "run"
    for service, pid in reversed(list(_running(run_dir).items())):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid, service) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid, service):
            os.kill(pid, signal.SIGKILL)
        print(f"{service:9} stopped", file=sys.stderr)
    for service in SERVICES:
        _pid_file(run_dir, service).unlink(missing_ok=True)


def cli_status(data_dir: Path) -> None:
    running = _running(data_dir / "run")
    ports = Ports()
    rows = {
        s: {"pid": running.get(s), "ready": s in running and is_ready(s, ports)} for s in SERVICES
    }
    print(json.dumps(rows, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the perflab services as local processes.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("PERFLAB_DATA", ".local"))
    )
    parser.add_argument("--products", type=int, default=int(os.environ.get("PRODUCTS", "10000")))
    args = parser.parse_args()
    if args.command == "up":
        cli_up(args.data_dir, args.products)
    elif args.command == "down":
        cli_down(args.data_dir)
    else:
        cli_status(args.data_dir)


if __name__ == "__main__":
    main()
