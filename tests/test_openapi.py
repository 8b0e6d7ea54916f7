"""The committed OpenAPI document is what the app serves, with stable, readable operation ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app.openapi import render_openapi

CREDENTIAL_REPLIES = {"auth_signup", "auth_token", "auth_refresh"}
COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text() == render_openapi(), (
        "openapi/openapi.json is stale: run `uv run rapport openapi` and commit the file"
    )


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = json.loads(render_openapi())
    return [(path, method, op) for path, methods in spec["paths"].items() for method, op in methods.items()]


def test_operation_ids_are_stable_snake_case_and_unique() -> None:
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", operation_id) for operation_id in ids), ids
    assert {"contacts_list", "contacts_create", "contacts_get", "contacts_update", "contacts_search"} <= set(ids)


def test_every_operation_has_a_tag_and_post_takes_an_idempotency_key() -> None:
    """Except the routes whose replies carry credentials, which must not be stored."""
    for path, method, operation in _operations():
        assert operation.get("tags"), (method, path)
        if method == "post" and operation["operationId"] not in CREDENTIAL_REPLIES:
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert "Idempotency-Key" in headers, path


def test_main_schemas_carry_examples() -> None:
    schemas = json.loads(render_openapi())["components"]["schemas"]
    for name in ("ContactCreate", "CompanyCreate", "SignupRequest", "SearchRequest", "CustomFieldCreate"):
        assert schemas[name].get("examples"), name
