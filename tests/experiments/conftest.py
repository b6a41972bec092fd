import pytest

from perflab.common.localstack import Infra, port_open
from perflab.testing.infra import ensure_infra


@pytest.fixture(scope="session")
def read_infra() -> Infra:
    """PostgreSQL and Redis, which the read experiments need (not Kafka: they run without the
    worker); the harness starts the whole infrastructure when one of them is down."""
    infra = Infra()
    if not all(port_open(infra.host, int(p)) for p in (infra.postgres, infra.redis)):
        ensure_infra(infra)
    return infra
