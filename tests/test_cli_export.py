"""`rapport export`: every matching record to a CSV file, run as a real command."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx

from app.core.settings import Settings
from tests.helpers import Tenant


def _export(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "export", *args],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_export_writes_every_match(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, tmp_path: Path
) -> None:
    await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "contact", "key": "level", "label": "Level", "type": "text"},
    )
    for i in range(3):
        await client.post(
            "/api/v1/contacts",
            headers=tenant.headers,
            json={"first_name": f"伟{i}", "city": "上海", "title": "=cmd", "custom_fields": {"level": "gold"}},
        )
    await client.post("/api/v1/contacts", headers=tenant.headers, json={"first_name": "外", "city": "北京"})
    output = tmp_path / "contacts.csv"
    done = _export(
        settings,
        "--entity", "contacts", "--org", tenant.organization_id, "--output", str(output),
        "--filter", '{"field": "city", "op": "eq", "value": "上海"}',
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Wrote 3 contacts" in done.stderr
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"))))
    assert sorted(r["first_name"] for r in rows) == ["伟0", "伟1", "伟2"]
    assert {r["title"] for r in rows} == {"'=cmd"}
    assert {r["custom_fields.level"] for r in rows} == {"gold"}


def test_export_refuses_bad_arguments(settings: Settings, tmp_path: Path) -> None:
    output = str(tmp_path / "x.csv")
    wrong_entity = _export(settings, "--entity", "deals", "--org", "x", "--output", output)
    assert wrong_entity.returncode == 2
    no_org = _export(
        settings, "--entity", "contacts", "--org", "00000000-0000-7000-8000-000000000000", "--output", output
    )
    assert no_org.returncode == 1 and "active owner" in no_org.stderr


def test_export_leaves_no_file_when_it_is_refused(settings: Settings, tenant: Tenant, tmp_path: Path) -> None:
    output = tmp_path / "x.csv"
    unknown_field = _export(
        settings, "--entity", "contacts", "--org", tenant.organization_id, "--output", str(output),
        "--filter", '{"field": "shoe_size", "op": "eq", "value": 42}',
    )  # fmt: skip
    assert unknown_field.returncode == 1 and "shoe_size" in unknown_field.stderr
    assert list(tmp_path.iterdir()) == []
    missing_folder = _export(
        settings, "--entity", "contacts", "--org", tenant.organization_id,
        "--output", str(tmp_path / "missing" / "x.csv"),
    )  # fmt: skip
    assert missing_folder.returncode == 2 and "does not exist" in missing_folder.stderr
    assert "Traceback" not in missing_folder.stderr
