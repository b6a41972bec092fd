"""deploy/scripts/smoke.py against fake gateway, Prometheus and Jaeger servers: it passes when
the lab works and names what is wrong when it does not. (Against the real stacks it runs as
`make smoke`; that needs a cluster or `make local`.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "deploy/scripts/smoke.py"


class FakeLab:
    """One server answering as gateway, Prometheus and Jaeger."""

    def __init__(self) -> None:
        self.orders: dict[str, int] = {}
        self.target_health = "up"
        self.trace_services = ["gateway", "orders", "worker", "payments"]
        self.final_status = "ORDER_STATUS_PAID"
        lab = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/readyz":
                    self.reply(200, {"status": "ok"})
                elif path == "/api/products":
                    self.reply(200, {"products": [{"id": 1}, {"id": 2}], "next_page_token": ""})
                elif path.startswith("/api/orders/"):
                    order_id = path.rsplit("/", 1)[1]
                    lab.orders[order_id] += 1
                    status = lab.final_status if lab.orders[order_id] > 1 else "PENDING"
                    self.reply(200, {"id": order_id, "status": status})
                elif path == "/api/v1/targets":
                    targets = [
                        {
                            "labels": {"job": j},
                            "health": lab.target_health,
                            "scrapeUrl": f"http://{j}",
                        }
                        for j in ("gateway", "orders", "payments", "worker", "prometheus")
                    ]
                    self.reply(200, {"status": "success", "data": {"activeTargets": targets}})
                elif path == "/api/traces":
                    processes = {
                        f"p{i}": {"serviceName": s} for i, s in enumerate(lab.trace_services)
                    }
                    self.reply(200, {"data": [{"traceID": "abc123", "processes": processes}]})
                else:
                    self.reply(404, {"detail": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                assert body["items"][0]["quantity"] == 1 and self.headers["Idempotency-Key"]
                order_id = f"o{len(lab.orders) + 1}"
                lab.orders[order_id] = 0
                self.reply(202, {"id": order_id, "status": "PENDING"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                str(SMOKE),
                "--gateway",
                self.url,
                "--prometheus",
                self.url,
                "--jaeger",
                self.url,
                "--timeout",
                "3",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def lab():
    lab = FakeLab()
    yield lab
    lab.server.shutdown()


def test_smoke_passes_on_a_working_lab(lab):
    result = lab.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke: 3 passed, 0 failed" in result.stdout
    assert len(lab.orders) == 3


def test_smoke_names_each_broken_part(lab):
    lab.target_health = "down"
    lab.trace_services = ["gateway", "orders"]
    result = lab.run()
    assert result.returncode == 1
    assert "smoke: 1 passed, 2 failed" in result.stdout
    assert "no trace spans all of" in result.stdout and "targets not up" in result.stdout


def test_smoke_fails_when_orders_stay_pending(lab):
    lab.final_status = "PENDING"
    result = lab.run()
    assert result.returncode == 1 and "not final yet" in result.stdout


def test_cluster_checks_report_unknown_hpa_cpu(lab, tmp_path):
    kubectl = tmp_path / "kubectl"
    hpas = {"items": [{"metadata": {"name": "perflab-gateway"}, "status": {}}]}
    ready = {"type": "Ready", "status": "True"}
    pods = {
        "items": [
            {"metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [ready]}}
        ]
    }
    kubectl.write_text(
        "#!/bin/sh\n"
        f"case \"$*\" in *' hpa '*) echo '{json.dumps(hpas)}';;\n"
        f"*) echo '{json.dumps(pods)}';; esac\n"
    )
    kubectl.chmod(0o755)
    result = lab.run("--kube-context", "kind-perflab", "--kubectl", str(kubectl))
    assert result.returncode == 1
    assert (
        "HPAs with CPU <unknown>" in result.stdout and "smoke: 4 passed, 1 failed" in result.stdout
    )
