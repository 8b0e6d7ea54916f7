"""`rapport import`: a file imported here and now, with progress and a summary, as a real command."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import Tenant


def _import(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "import", *args],
        env={**os.environ, "COLUMNS": "200", "RAPPORT_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_import_writes_the_file_and_reports(client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path) -> None:
    source = tmp_path / "客户.csv"
    source.write_text("联系人,邮箱,电话\n张伟,zhang@example.cn,13800138000\n李娜,not-an-email,\n", encoding="gb18030")
    errors = tmp_path / "errors.csv"
    done = _import(
        tmp_path, str(source), "--entity", "contacts", "--org", tenant.organization_id, "--errors", str(errors)
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["status"] == "done"
    assert "created" in done.stderr and "Wrote 1 failed or skipped rows" in done.stderr
    [failed] = list(csv.DictReader(io.StringIO(errors.read_text(encoding="utf-8-sig"))))
    assert failed["row"] == "3" and failed["联系人"] == "李娜" and "email" in failed["reason"]
    contacts = (await client.get("/api/v1/contacts", headers=tenant.headers)).json()["items"]
    assert [(c["last_name"], c["first_name"], c["phone"]) for c in contacts] == [("张", "伟", "+8613800138000")]

    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"邮箱": "email", "联系人": None, "电话": "phone"}))
    again = _import(
        tmp_path, str(source), "--entity", "contacts", "--org", tenant.organization_id,
        "--mode", "upsert", "--mapping", str(mapping),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len((await client.get("/api/v1/contacts", headers=tenant.headers)).json()["items"]) == 1


def test_import_refuses_bad_arguments(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("email\na@example.com\n")
    wrong_mode = _import(tmp_path, str(source), "--entity", "contacts", "--mode", "merge")
    assert wrong_mode.returncode == 2 and "mode" in wrong_mode.stderr
    unknown_org = _import(
        tmp_path, str(source), "--entity", "contacts", "--org", "01a00000-0000-7000-8000-000000000000"
    )
    assert unknown_org.returncode == 1 and "No organisation" in unknown_org.stderr


def test_import_names_the_option_or_file_at_fault_before_importing(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("email\na@example.com\n")
    bad_json = tmp_path / "mapping.json"
    bad_json.write_text('{"email": "email",\n')
    cases = [
        (["--mapping", str(bad_json)], f"--mapping: {bad_json} is not a JSON object"),
        (["--org", "not-a-uuid"], "--org: 'not-a-uuid' is not an organisation id"),
        (
            ["--errors", str(tmp_path / "missing" / "e.csv")],
            f"--errors: the folder {tmp_path / 'missing'} does not exist",
        ),
    ]
    for extra, message in cases:
        refused = _import(tmp_path, str(source), "--entity", "contacts", *extra)
        assert refused.returncode == 2, refused.stderr
        assert message in refused.stderr.replace("\n", "") and "Traceback" not in refused.stderr
    wrong_entity = _import(tmp_path, str(source), "--entity", "widgets")
    assert wrong_entity.returncode == 2 and "--entity:" in wrong_entity.stderr
    assert "errors.pydantic.dev" not in wrong_entity.stderr


async def test_import_reports_a_file_without_rows_without_the_apis_field_names(tenant: Tenant, tmp_path: Path) -> None:
    source = tmp_path / "header.csv"
    source.write_text("email\n")
    refused = _import(tmp_path, str(source), "--entity", "contacts", "--org", tenant.organization_id)
    assert refused.returncode == 1
    assert "file: The file has a header but no rows" in refused.stderr and "body." not in refused.stderr
