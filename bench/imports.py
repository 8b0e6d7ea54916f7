"""Issue 4's import figure: 1,000,000 contacts from a CSV file through `POST /api/v1/imports` and
a real `rapport worker`, with normalisation and e-mail de-duplication on (`skip_duplicates`).

    uv run python -m bench.imports [--rows 1000000] [--chunk-rows 5000] [--upsert-again]

Targets: under 60 s wall, the worker's peak RSS under 400 MB, and at least 25 % of the rows per
second of a bare COPY of the same file into the same table, measured in the same run.

The file (generated once into the work directory, kept between runs): first_name, last_name,
email, phone, title, city; names 92 % Chinese weighted by surname frequency, pinyin and QQ-number
e-mails (which collide as real ones do: the de-duplication has work), national-format mobiles.

1. Fresh database `rapport_bench_import`, migrated; an organisation signed up through the API.
2. Ceiling: `COPY contacts (first_name, last_name, email, phone, title, city) FROM` the file, in
   a transaction with the other columns defaulted (organisation, ids by `rapport_uuid7()`, …),
   into the same table with all its indexes; rolled back and the table vacuumed.
3. The import: the file posted to the API (in this process, httpx ASGI transport), one worker
   process started with the bench settings; wall time from the POST to `status = done`, the
   worker's peak RSS (`VmHWM` in /proc) at the end, and its checking process's, sampled while
   the import runs (that process ends with the import).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common, data
from bench.seed import usable_mobile_prefixes  # first: importing it sets the seed's environment

DATABASE_URL = os.environ.get(
    "RAPPORT_BENCH_IMPORT_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport_bench_import"
)
REDIS_URL = os.environ.get("RAPPORT_BENCH_IMPORT_REDIS_URL", "redis://127.0.0.1:6379/6")
common.use_app_environment(RAPPORT_DATABASE_URL=DATABASE_URL, RAPPORT_REDIS_URL=REDIS_URL)

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import redis  # noqa: E402

from app.core.db import drop_database, ensure_database  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402

COLUMNS = ["first_name", "last_name", "email", "phone", "title", "city"]


def write_file(path: Path, rows: int) -> None:
    rng = random.Random(4)
    prefixes = usable_mobile_prefixes()
    cities = [city[0] for city in data.CITIES]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for _ in range(rows):
            person = data.person(rng)
            phone = data.mobile(rng, prefixes).removeprefix("+86")
            writer.writerow(
                [
                    person.first_name,
                    person.last_name,
                    data.email(rng, person, None),
                    f"{phone[:3]} {phone[3:7]} {phone[7:]}" if rng.random() < 0.3 else phone,
                    rng.choice(data.TITLES),
                    rng.choice(cities),
                ]
            )
    partial.replace(path)


async def bare_copy(path: Path, organization_id: str, database_url: str = DATABASE_URL) -> float:
    """Seconds for COPY of the file's columns into contacts (rolled back), the ceiling."""
    connection = await asyncpg.connect(common.asyncpg_dsn(database_url))
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(
            f"""ALTER TABLE contacts
                ALTER COLUMN organization_id SET DEFAULT '{organization_id}',
                ALTER COLUMN id SET DEFAULT rapport_uuid7(),
                ALTER COLUMN source SET DEFAULT 'import',
                ALTER COLUMN lifecycle_stage SET DEFAULT 'lead',
                ALTER COLUMN email_opt_in SET DEFAULT false,
                ALTER COLUMN created_at SET DEFAULT now(),
                ALTER COLUMN updated_at SET DEFAULT now(),
                ALTER COLUMN version SET DEFAULT 1"""
        )
        started = time.perf_counter()
        with path.open("rb") as source:
            await connection.copy_to_table("contacts", source=source, columns=COLUMNS, format="csv", header=True)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
        await connection.execute("VACUUM contacts")
        return elapsed
    finally:
        await connection.close()


def write_changed(path: Path, changed: Path) -> None:
    """The file again with every row's title changed: an upsert of it updates each contact."""
    with path.open(encoding="utf-8", newline="") as source, changed.open("w", encoding="utf-8", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target)
        header = next(reader)
        title = header.index("title")
        writer.writerow(header)
        for row in reader:
            row[title] = f"{row[title]}（新）"
            writer.writerow(row)


async def import_file(
    client: httpx.AsyncClient, headers: dict[str, str], path: Path, mode: str, worker: subprocess.Popen[bytes]
) -> tuple[float, dict[str, Any], float]:
    """POSTs the file and waits for the import to settle: wall seconds, its state, and the peak
    RSS of the worker's checking process seen meanwhile."""
    started = time.perf_counter()
    with path.open("rb") as file:
        created = await client.post(
            "/api/v1/imports",
            headers=headers,
            files={"file": (path.name, file)},
            data={"entity": "contacts", "mode": mode},
        )
    created.raise_for_status()
    import_id = created.json()["id"]
    state: dict[str, Any] = {}
    children_rss = 0.0
    while state.get("status") not in ("done", "failed", "cancelled"):
        await asyncio.sleep(0.5)
        children_rss = max(children_rss, children_peak_rss_mb(worker.pid))
        state = (await client.get(f"/api/v1/imports/{import_id}", headers=headers)).json()
    return time.perf_counter() - started, state, children_rss


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def children_peak_rss_mb(pid: int) -> float:
    """The summed peak RSS of the worker's child processes now (the import's checking process;
    0 when there is none)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += peak_rss_mb(int(child))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return total


async def run(args: argparse.Namespace) -> None:
    path = common.WORK_DIR / f"import-{args.rows}.csv"
    if not path.exists():
        print(f"writing {path} …", flush=True)
        write_file(path, args.rows)
    size_mb = path.stat().st_size / 1e6
    await drop_database(DATABASE_URL)
    await ensure_database(DATABASE_URL)
    await asyncio.to_thread(upgrade, DATABASE_URL)
    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = common.WORK_DIR / "import-data"
    env = {
        **os.environ,
        "RAPPORT_DATA_DIR": str(data_dir),
        "RAPPORT_IMPORTS_CHUNK_ROWS": str(args.chunk_rows),
        "RAPPORT_IMPORTS_MAX_FILE_MB": "1024",
    }
    os.environ.update({key: env[key] for key in ("RAPPORT_DATA_DIR", "RAPPORT_IMPORTS_MAX_FILE_MB")})
    get_settings.cache_clear()
    app = create_app(get_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            signup = await client.post(
                "/api/v1/auth/signup",
                json={"organization_name": "Import bench", "email": "import@bench.cn",
                      "password": "bench passphrase 2026", "full_name": "王芳"},
            )  # fmt: skip
            signup.raise_for_status()
            headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
            organization_id = signup.json()["organization"]["id"]

            copy_seconds = await bare_copy(path, organization_id)
            print(f"bare COPY: {args.rows} rows in {copy_seconds:.1f} s ({args.rows / copy_seconds:,.0f} rows/s)")

            worker = start_worker(env)
            try:
                wall, state, children_rss = await import_file(client, headers, path, "skip_duplicates", worker)
                rss = peak_rss_mb(worker.pid)
                if args.upsert_again:
                    changed = path.with_name(f"{path.stem}-changed.csv")
                    write_changed(path, changed)
                    again_wall, again, _ = await import_file(client, headers, changed, "upsert", worker)
                    again_counts = {k: again[k] for k in ("created", "updated", "unchanged", "skipped", "failed")}
                    print(f"upsert of the rows with a new title: {again['status']} {again_counts}, {again_wall:.1f} s")
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    rate, ceiling = args.rows / wall, args.rows / copy_seconds
    counts = {k: state[k] for k in ("created", "skipped", "failed")}
    print(f"import: {state['status']} {counts}, {wall:.1f} s wall (target < 60), timings {state['timings']}")
    together = rss + children_rss
    print(f"worker peak RSS {rss:.0f} MB, its checking process {children_rss:.0f} MB: {together:.0f} MB (target < 400)")
    print(f"{rate:,.0f} rows/s = {rate / ceiling:.2f} × the bare COPY (target ≥ 0.25)")
    result = {
        "machine": common.machine_info(),
        "args": vars(args),
        "file_mb": size_mb,
        "copy_seconds": copy_seconds,
        "import_wall_seconds": wall,
        "import": state,
        "worker_peak_rss_mb": rss,
        "checking_process_peak_rss_mb": children_rss,
        "ratio_to_copy": rate / ceiling,
    }
    print(f"saved {common.save_result('imports', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=5000)
    parser.add_argument(
        "--upsert-again", action="store_true", help="then import the rows again with a new title (mode upsert), timed"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
