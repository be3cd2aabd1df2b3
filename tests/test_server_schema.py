"""Property-based tests of the server from its own published OpenAPI document
(schemathesis): whatever fits — or nearly fits — the documented formats, the server answers
without a 5xx, with valid tokens of each scope and without one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from opsctl.inventory import load
from opsctl.server.app import create_app
from opsctl.store import Store
from opsctl.store.tokens import create_token

INVENTORY = """
sites:
  - name: zj
    hosts:
      - name: web1
        transport: agent
    fleets:
      - name: dispensers
        vendors: [vendor-a]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("schema")
    (folder / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    store = Store.open(str(folder / "opsctl.db"))
    tokens = {
        "agent": create_token(store, "agent", "web1")[0],
        "vendor": create_token(store, "vendor", "vendor-a")[0],
    }
    try:
        yield create_app(store, load(folder / "inventory.yaml")), tokens
    finally:
        store.close()


@pytest.fixture(scope="module")
def api_schema(served: tuple[Any, dict[str, str]]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", served[0])


OPERATIONS = [
    ("POST", "/api/v1/agent/push"),
    ("POST", "/api/v1/dispensers/heartbeats"),
    ("GET", "/api/v1/status"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_input_makes_the_server_fail(
    api_schema: Any, served: tuple[Any, dict[str, str]], method: str, path: str
) -> None:
    tokens = served[1]
    scope = "vendor" if "dispensers" in path else "agent"
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def probe(case: Any) -> None:
        for headers in ({"Authorization": f"Bearer {tokens[scope]}"}, {}):
            response = case.call(headers=headers)
            assert response.status_code < 500, (path, response.status_code, response.text)
            if response.status_code >= 400:
                problem = response.json()
                assert problem["error"] and problem["detail"], problem

    probe()


def test_the_schema_covers_every_route(api_schema: Any) -> None:
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert set(OPERATIONS) <= operations
