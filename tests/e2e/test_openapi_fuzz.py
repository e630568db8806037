"""Property-based fuzzing of every operation in /api/schema/ against the running stack (schemathesis 4).

The schema is loaded from the running stack, and each documented operation gets a bounded number of
generated requests, schema-conforming (positive) and deliberately broken (negative). Every answer must
be documented: no 5xx, a documented status code and content type, a body matching the documented
schema. A regular user's token is sent everywhere and a staff token to the staff-only operations, so
the authenticated paths run as well as the refusals.

Why not `@schema.parametrize()` with `schemathesis.pytest.from_fixture`: schemathesis 4.32's lazy
loader writes `request.node._nodeid`, which pytest 9.2 no longer has, so every such test errors out.
Driving each operation's Hypothesis strategy (`operation.as_strategy()`) is the documented alternative;
the operations to test come from chalicelib.openapi.OPERATIONS, which tests/unit/test_openapi.py keeps
equal to the routing table, so the test ids exist at collection time without a running stack.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib.openapi import OPERATIONS

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 25}
# API Gateway refuses request lines this long itself (414) before any of our code runs.
MAX_URL_BYTES = 8192
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


def _path_params(op) -> list[str]:
    return [part[1:-1] for part in op.path.split("/") if part.startswith("{")]


def _cases():
    for op in OPERATIONS:
        label = f"{op.method} {op.path}"
        # Ids of the schema's pattern, almost all unknown: the 404 paths and the refusals.
        yield pytest.param(op, POSITIVE, False, id=f"{label} positive")
        if op.method == "GET" and _path_params(op) == ["event_id"]:
            # A real event, so the success shapes (showtimes, seats) are checked against the schema.
            yield pytest.param(op, POSITIVE, True, id=f"{label} positive known-event")
        if op.body is not None or op.query is not None:
            # Broken bodies / queries reach validation only with a real id in the path.
            known = _path_params(op) == ["event_id"]
            yield pytest.param(op, NEGATIVE, known, id=f"{label} negative")
        # Operations whose only input is a path id get no negative cases here: a malformed id is
        # exercised by tests/e2e/test_rest_errors.py (the local gateway mis-routes some of them).


@pytest.fixture(scope="module")
def api_schema(stack):
    return schemathesis.openapi.from_url(stack.api("schema/"), wait_for_schema=30, timeout=30)


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    return {"user": stack.register()["access"], "staff": stack.staff_token()}


@pytest.fixture(scope="module")
def fuzz_event_id(stack, tokens) -> str:
    """An event of its own (one small showtime), so fuzzing never touches the demo data others use."""
    staff = {"Authorization": f"Bearer {tokens['staff']}"}
    event = requests.post(
        stack.api("events/"),
        json={"title": "Fuzz target", "description": "", "category": "drama", "duration_minutes": 90},
        headers=staff,
        timeout=30,
    )
    assert event.status_code == 201, event.text
    event_id = event.json()["id"]
    showtime = requests.post(
        stack.api(f"events/{event_id}/showtimes/"),
        json={
            "date": "2031-05-01",
            "theater": "Fuzz Hall",
            "starts_at": "20:00",
            "rows": 2,
            "seats_per_row": 3,
            "price": "7.25",
            "currency": "USD",
        },
        headers=staff,
        timeout=30,
    )
    assert showtime.status_code == 201, showtime.text
    return event_id


def _url_bytes(case, base_url: str) -> int:
    prepared = requests.Request("GET", base_url + case.formatted_path, params=case.query or {}).prepare()
    return len(prepared.url or "")


@pytest.mark.parametrize(("op", "mode", "known_event"), list(_cases()))
def test_operation_answers_only_documented_responses(api_schema, stack, tokens, fuzz_event_id, op, mode, known_event):
    operation = api_schema[op.path][op.method]
    token = tokens["staff" if op.auth == "staff" else "user"]
    fixed = {"path_parameters": {"event_id": fuzz_event_id}} if known_event else {}
    sent: list = []

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,  # no .hypothesis/ folder in the working tree
        derandomize=True,  # the same requests every run: a failure here is reproducible
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        assume(_url_bytes(case, stack.base_url) <= MAX_URL_BYTES)
        sent.append(case)
        case.call_and_validate(
            base_url=stack.base_url,
            headers={"Authorization": f"Bearer {token}"},
            checks=CHECKS,
            timeout=30,
        )

    fuzz()
    assert sent, "no request was generated"
