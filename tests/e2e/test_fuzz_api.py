"""Property-based fuzzing of the gateway's public API with schemathesis, against the real
gateway of the e2e stack (and, behind it, the real orders service and databases).

The schema is the one the running gateway serves at /openapi.json. For every operation
schemathesis generates valid and invalid requests (path, query, headers, body); every answer
must be free of server errors (5xx) and match the response schema documented for its status.

`FUZZ_EXAMPLES` sets the examples per operation (default 30, CI-sized); for a longer run:
`FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/e2e/test_fuzz_api.py`.
"""

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
EXAMPLES_DB = Path(__file__).parents[2] / ".pytest_cache" / "hypothesis"


@pytest.fixture(scope="session")
def gateway_schema(gateway_url: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json", timeout=10)
    schema.config.generation.update(max_examples=EXAMPLES, database=str(EXAMPLES_DB))
    return schema


schema = schemathesis.pytest.from_fixture("gateway_schema")


@schema.parametrize()
@settings(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_any_request_without_a_server_error(
    case: schemathesis.Case, gateway_url: str
) -> None:
    case.call_and_validate(
        base_url=gateway_url,
        timeout=30,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            negative_data_rejection,
        ],
    )
