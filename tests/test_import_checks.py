"""Rows read and checked apart from the database, as the second process of an import does."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from app.core import collector
from app.core.tabular import Limits, Table
from app.schemas.contact import ContactCreate, ContactUpdate
from app.services import import_checks
from app.services.import_checks import ChunkChecker
from app.services.import_mapping import Converter, auto_map


def _checker(tmp_path: Path, content: str, schema: type, *, skip: int = 0) -> ChunkChecker:
    path = tmp_path / "rows.csv"
    path.write_text(content, encoding="utf-8")
    table = Table(path, Limits(max_columns=100, max_cell_chars=1000))
    converter = Converter.build(table.header, auto_map(table.header, "contacts", {}), "contacts", {})
    return ChunkChecker(table, converter, schema, skip=skip, chunk_rows=2)


CONTENT = "姓名,邮箱,电话,标签\n张伟,Zhang.Wei@Example.CN,138 0013 8000,vip;上海\n\n李娜,bad,,\n王芳,,+49 30 901820,\n"


def test_chunks_come_in_file_order_checked_and_pickle_back_to_the_same_bodies(tmp_path: Path) -> None:
    checker = pickle.loads(pickle.dumps(_checker(tmp_path, CONTENT, ContactCreate)))  # sent before reading
    chunks = []
    while (chunk := checker.next_chunk()) is not None:
        chunks.append(pickle.loads(pickle.dumps(chunk)))
    rows = [item for chunk in chunks for item in chunk.rows]
    assert [len(chunk.rows) for chunk in chunks] == [2, 2]
    assert [item.row.number for item in rows] == [2, 3, 4, 5]
    first, blank, bad, last = rows
    assert first.body == ContactCreate.model_validate(
        {"first_name": "伟", "last_name": "张", "email": "zhang.wei@example.cn", "phone": "+8613800138000",
         "tags": ["vip", "上海"]}
    )  # fmt: skip
    assert first.body is not None
    assert first.body.model_fields_set == {"first_name", "last_name", "email", "phone", "tags"}
    assert (blank.values, blank.body, blank.reason) == (None, None, None)
    assert bad.body is None and bad.reason is not None and bad.reason.startswith("email: ")
    assert last.body is not None and last.body.model_dump()["phone"] == "+4930901820"
    assert chunks[0].phone_forms == {"+8613800138000": ["8613800138000"]}


def test_a_checker_starts_after_the_rows_already_written_and_checks_patches_for_upserts(tmp_path: Path) -> None:
    checker = _checker(tmp_path, CONTENT, ContactUpdate, skip=3)
    chunk = checker.next_chunk()
    assert chunk is not None and [item.row.number for item in chunk.rows] == [5]
    body = chunk.rows[0].body
    assert isinstance(body, ContactUpdate) and body.model_fields_set == {"first_name", "last_name", "phone"}
    assert checker.next_chunk() is None


def test_the_checking_process_collects_garbage_as_bulk_work_does(tmp_path: Path) -> None:
    """Its chunks' objects go by reference counting; full collections over them only cost time."""
    spawn = multiprocessing.get_context("spawn")
    checker = _checker(tmp_path, CONTENT, ContactCreate)
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=import_checks.use_checker, initargs=(checker,)) as pool:
        assert pool.submit(gc.get_threshold).result(timeout=60) == collector.BULK_WORK_THRESHOLDS
