"""The OpenAPI document, rendered the same way for the committed file and its test."""

from __future__ import annotations

import json

from app.main import create_app


def render_openapi() -> str:
    return json.dumps(create_app().openapi(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
