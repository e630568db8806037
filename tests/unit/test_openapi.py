"""The OpenAPI document is valid and documents exactly the Chalice routing table (no drift either way)."""

from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import validate

import app as application
from chalicelib import openapi, schemas

DOC = openapi.document()
METHODS = {"get", "post", "put", "patch", "delete"}


def _routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, entries in application.app.routes.items() for method in entries}


def _documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOC["paths"].items() for method in item if method in METHODS}


def test_document_is_a_valid_openapi_3_document():
    validate(DOC)
    assert DOC["openapi"].startswith("3.")


def test_every_chalice_route_is_documented():
    assert _routes() - _documented() == set()


def test_every_documented_operation_is_a_chalice_route():
    assert _documented() - _routes() == set()


def test_operations_table_has_no_duplicates():
    keys = [(op.method, op.path) for op in openapi.OPERATIONS]
    assert len(keys) == len(set(keys))


def test_operation_ids_are_unique():
    ids = [DOC["paths"][path][method.lower()]["operationId"] for method, path in _documented()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("op", openapi.OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_every_operation_documents_its_success_response_and_error_shape(op):
    spec = DOC["paths"][op.path][op.method.lower()]
    assert str(op.status) in spec["responses"]
    for status in op.errors:
        schema = spec["responses"][str(status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}


@pytest.mark.parametrize(
    "op", [op for op in openapi.OPERATIONS if op.body is not None], ids=lambda op: f"{op.method} {op.path}"
)
def test_every_json_body_operation_documents_400_413_415(op):
    assert {400, 413, 415} <= set(op.errors)
    spec = DOC["paths"][op.path][op.method.lower()]
    assert spec["requestBody"]["required"] is True
    assert "application/json" in spec["requestBody"]["content"]


@pytest.mark.parametrize(
    "op", [op for op in openapi.OPERATIONS if op.auth in ("required", "staff")], ids=lambda op: f"{op.method} {op.path}"
)
def test_authenticated_operations_require_a_bearer_token_and_document_401(op):
    spec = DOC["paths"][op.path][op.method.lower()]
    assert spec["security"] == [{"bearer": []}]
    assert 401 in op.errors
    if op.auth == "staff":
        assert 403 in op.errors


def test_every_path_parameter_is_documented_with_the_id_pattern():
    for path, item in DOC["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        for method, spec in item.items():
            documented = {p["name"]: p for p in spec["parameters"] if p["in"] == "path"}
            assert set(documented) == set(names), (method, path)
            for param in documented.values():
                assert param["required"] is True
                assert param["schema"]["pattern"] == openapi.ID_PATTERN


def test_query_parameters_are_documented_as_sent_on_the_wire():
    params = {p["name"]: p for p in DOC["paths"]["/api/events"]["get"]["parameters"]}
    assert set(params) == {"category", "category_name", "cursor", "limit"}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    # No `null` branch: a query parameter is either absent or a string.
    assert params["cursor"]["schema"]["type"] == "string"


def test_tickets_listing_accepts_anonymous_and_bearer_callers():
    spec = DOC["paths"]["/api/events/{event_id}/tickets"]["get"]
    assert spec["security"] == [{}, {"bearer": []}]


def test_every_reference_resolves_to_a_component():
    components = DOC["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(DOC)))
    assert refs and refs <= set(components)


def test_ticket_shape_matches_the_contract():
    ticket = DOC["components"]["schemas"]["TicketOut"]
    assert set(ticket["required"]) == {
        "ticket_id",
        "showtime_id",
        "seat",
        "row",
        "number",
        "price",
        "currency",
        "status",
        "mine",
    }
    assert ticket["properties"]["status"]["enum"] == ["available", "held", "sold"]


def test_error_shape_is_code_and_message():
    assert set(DOC["components"]["schemas"]["ErrorOut"]["required"]) == {"code", "message"}
    assert schemas.ErrorOut(code="email_taken", message="x").code == "email_taken"
