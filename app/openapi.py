"""The OpenAPI document: what FastAPI derives from the routes, plus the security schemes (the
routes read credentials from the headers themselves, see routers/deps.py)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.routers.deps import SECURITY_SCHEMES, described_security


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        spec.setdefault("components", {})["securitySchemes"] = {
            name: scheme.model_dump(mode="json", by_alias=True, exclude_none=True)
            for name, scheme in SECURITY_SCHEMES.items()
        }
        for route in app.routes:
            if isinstance(route, APIRoute) and (security := described_security(route)):
                for method in route.methods or ():
                    spec["paths"][route.path_format][method.lower()]["security"] = security
        app.openapi_schema = spec
    return app.openapi_schema


def render_openapi() -> str:
    from app.main import create_app

    return json.dumps(create_app().openapi(), indent=2, ensure_ascii=False) + "\n"
