"""What the database alone costs issue 4's import: the rows a finished `bench.imports` run wrote
(contacts with their search grams, their audit rows, lead scores, events and import issues),
written again by PostgreSQL from its own binary COPY of them, in transactions of the import's
chunk size, with no application work at all. An importer that writes the same rows into the same
tables cannot be faster than this, whatever it does in Python.

    uv run python -m bench.imports --rows 1000000     # first: leaves its database behind
    uv run python -m bench.import_floor [--chunk-rows 5000]

1. `rapport_bench_import_floor` is made from the import's database as a template.
2. Each table's rows of the imported organisation are read out with `COPY … TO STDOUT (FORMAT
   binary)` (table order: by id, which is creation order) and the tables are emptied.
3. Ceiling: the bare COPY of the import's CSV into the emptied contacts table, as in
   `bench.imports` (rolled back).
4. Floor: chunk i writes the i-th slice of each table (contacts, audit rows, lead scores, events,
   import issues, in the order the import writes them) with binary COPY, one transaction per
   chunk. Printed as the file's rows per second against the ceiling: the most any importer of
   these rows could reach on this machine's database.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import struct
import time
from typing import Any

import asyncpg

from app.core.db import drop_database
from bench import common
from bench.imports import DATABASE_URL, bare_copy

FLOOR_URL = DATABASE_URL.rsplit("/", 1)[0] + "/rapport_bench_import_floor"
# In the order an import chunk writes them; each with the column its rows are read out in order of.
TABLES = {
    "contacts": "id",
    "audit_log": "id",
    "lead_scores": "contact_id",
    "events": "position",
    "import_issues": "id",
}
_TRAILER = struct.pack("!h", -1)


class BinaryRows:
    """One table's rows as PostgreSQL's binary COPY wrote them, split into tuples so that any
    slice of them can be copied back."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        extension_length = struct.unpack_from("!I", data, 15)[0]
        self.header = data[: 19 + extension_length]
        self.starts: list[int] = []
        position = len(self.header)
        view = memoryview(data)
        while (fields := struct.unpack_from("!h", view, position)[0]) != -1:
            self.starts.append(position)
            position += 2
            for _ in range(fields):
                length = struct.unpack_from("!i", view, position)[0]
                position += 4 + max(length, 0)
        self.end = position

    def __len__(self) -> int:
        return len(self.starts)

    def part(self, index: int, parts: int) -> bytes:
        """The index-th of `parts` equal slices, as a complete binary COPY stream."""
        first, last = len(self) * index // parts, len(self) * (index + 1) // parts
        if first == last:
            return b""
        stop = self.starts[last] if last < len(self) else self.end
        return self.header + self.data[self.starts[first] : stop] + _TRAILER


async def writable_columns(connection: Any, table: str) -> list[str]:
    rows = await connection.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        table,
    )
    return [row["attname"] for row in rows]


async def read_out(connection: Any, table: str, columns: list[str], order: str, organization_id: str) -> BinaryRows:
    buffer = io.BytesIO()
    listed = ", ".join(f'"{column}"' for column in columns)
    await connection.copy_from_query(
        f"SELECT {listed} FROM {table} WHERE organization_id = $1 ORDER BY {order}",
        organization_id,
        output=buffer,
        format="binary",
    )
    return BinaryRows(buffer.getvalue())


async def run(args: argparse.Namespace) -> None:
    path = common.WORK_DIR / f"import-{args.rows}.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python -m bench.imports --rows {args.rows}` first")
    source_name = DATABASE_URL.rsplit("/", 1)[1]
    await drop_database(FLOOR_URL)
    admin = await asyncpg.connect(common.asyncpg_dsn(DATABASE_URL.rsplit("/", 1)[0] + "/postgres"))
    try:
        await admin.execute(f'CREATE DATABASE rapport_bench_import_floor TEMPLATE "{source_name}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(common.asyncpg_dsn(FLOOR_URL))
    try:
        organization_id = await connection.fetchval(
            "SELECT organization_id FROM imports WHERE status = 'done' ORDER BY created_at DESC LIMIT 1"
        )
        if organization_id is None:
            raise SystemExit("the import database holds no finished import")
        columns = {table: await writable_columns(connection, table) for table in TABLES}
        rows = {
            table: await read_out(connection, table, columns[table], order, organization_id)
            for table, order in TABLES.items()
        }
        counts = {table: len(table_rows) for table, table_rows in rows.items()}
        common.log(f"read out {counts}")
        await connection.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        await connection.execute(f"VACUUM ANALYZE {', '.join(TABLES)}")
    finally:
        await connection.close()

    copy_seconds = await bare_copy(path, str(organization_id), FLOOR_URL)
    ceiling = args.rows / copy_seconds
    common.log(f"bare COPY: {args.rows} rows in {copy_seconds:.1f} s ({ceiling:,.0f} rows/s)")

    chunks = math.ceil(args.rows / args.chunk_rows)
    connection = await asyncpg.connect(common.asyncpg_dsn(FLOOR_URL))
    try:
        started = time.perf_counter()
        per_table = dict.fromkeys(TABLES, 0.0)
        for index in range(chunks):
            async with connection.transaction():
                for table, table_rows in rows.items():
                    if not (data := table_rows.part(index, chunks)):
                        continue
                    table_started = time.perf_counter()
                    await connection.copy_to_table(
                        table, source=io.BytesIO(data), columns=columns[table], format="binary"
                    )
                    per_table[table] += time.perf_counter() - table_started
        floor_seconds = time.perf_counter() - started
    finally:
        await connection.close()
    await drop_database(FLOOR_URL)

    rate = args.rows / floor_seconds
    print(f"the import's rows written by the database alone: {floor_seconds:.1f} s for the file's {args.rows} rows")
    print("  " + ", ".join(f"{table} {seconds:.1f} s" for table, seconds in per_table.items()))
    print(f"{rate:,.0f} rows/s = {rate / ceiling:.2f} × the bare COPY (the import's target: ≥ 0.25)")
    result = {
        "machine": common.machine_info(),
        "args": vars(args),
        "rows_written": counts,
        "copy_seconds": copy_seconds,
        "floor_seconds": floor_seconds,
        "per_table_seconds": per_table,
        "ratio_to_copy": rate / ceiling,
    }
    print(f"saved {common.save_result('import_floor', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="the rows of the file bench.imports imported")
    parser.add_argument("--chunk-rows", type=int, default=5000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
