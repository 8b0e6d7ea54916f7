"""The part of an import's work that needs no database: reading the file's rows, converting
their cells (the mapping) and checking each record against its schema (with e-mail and phone
normalisation).

It is pure and, per row, as dear as writing, so an import longer than a chunk runs it in a
second process (`imports`) that reads and checks chunk n + 1 while the worker writes chunk n.
The module imports no database code, so that process stays small. A chunk crosses between the
processes pickled in the checking process and unpickled in the worker's event loop thread, with
each checked body as its field values, rebuilt without validating again (pickling the models
themselves cost half as much as checking them).
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from app.core import collector, normalize
from app.core.tabular import Row, Table
from app.services.import_mapping import CellError, Converter, RowValues


@dataclass(slots=True)
class CheckedRow:
    """A row converted to `values` and, for entities with a schema, checked into `body`, the
    record to write. A failed row has a `reason`; a blank row has no values."""

    row: Row
    values: RowValues | None = None
    body: BaseModel | None = None
    reason: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        body = self.body
        if body is None:
            return (CheckedRow, (self.row, self.values, None, self.reason))
        # The body's pickle state (every field's value and which were set), restored as pydantic
        # unpickles a model: a sixth of the cost of `model_construct`. The record the body was
        # checked from is left behind.
        values = replace(self.values, record={}) if self.values is not None else None
        return (_rebuilt, (self.row, values, type(body), body.__getstate__()))


def _rebuilt(row: Row, values: RowValues, schema: type[BaseModel], state: dict[Any, Any]) -> CheckedRow:
    body = schema.__new__(schema)
    body.__setstate__(state)
    return CheckedRow(row, values, body)


@dataclass(slots=True)
class CheckedChunk:
    rows: list[CheckedRow]
    # The search forms of the chunk's phones, found while normalising them.
    phone_forms: dict[str, list[str]] = field(default_factory=dict)


class ChunkChecker:
    """Reads a file's rows from a position on and hands them out checked, a chunk at a time.
    `schema` None: converted only, for entities written record by record, whose rules check
    each record."""

    def __init__(
        self, table: Table, converter: Converter, schema: type[BaseModel] | None, *, skip: int, chunk_rows: int
    ) -> None:
        self._table = table
        self._skip = skip
        # Opened on the first chunk, in the process that reads: a checker is sent to a second
        # process before it has read anything.
        self._rows: Iterator[Row] | None = None
        self._converter = converter
        self._schema = schema
        self._chunk_rows = chunk_rows

    def next_chunk(self) -> CheckedChunk | None:
        """The next chunk, checked; None after the last row."""
        if self._rows is None:
            self._rows = self._table.rows(skip=self._skip)
        rows = list(islice(self._rows, self._chunk_rows))
        if not rows:
            return None
        checked: list[CheckedRow] = []
        with normalize.noting_phone_forms() as phone_forms:
            for row in rows:
                if row.error:
                    checked.append(CheckedRow(self._converter.withheld(row), reason=row.error))
                elif not row.cells:
                    checked.append(CheckedRow(row))
                else:
                    checked_row = self._check(row)
                    checked_row.row = self._converter.withheld(row)
                    checked.append(checked_row)
        return CheckedChunk(checked, phone_forms)

    def _check(self, row: Row) -> CheckedRow:
        try:
            values = self._converter.convert(row.cells)
        except CellError as error:
            return CheckedRow(row, reason=str(error))
        if self._schema is None:
            return CheckedRow(row, values)
        try:
            return CheckedRow(row, values, body=self._schema.model_validate(values.record))
        except ValidationError as error:
            return CheckedRow(row, values, reason=validation_reason(error))


_PARENT_CHECK_SECONDS: Final = 1.0

# The checker of the second process: one import's, given when the process starts (a checker
# pickles as its file, mapping and position: the rows are read in that process).
_process_checker: ChunkChecker | None = None


def use_checker(checker: ChunkChecker) -> None:
    global _process_checker
    _process_checker = checker
    collector.tune_for_bulk_work()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """Ends this process once the worker that started it is gone. A worker killed outright
    (SIGKILL, the OOM killer) never shuts its pool down, and this process, blocked writing a
    checked chunk to a pipe it holds both ends of, would otherwise live on, file and memory held."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(1)


def next_chunk_of_process() -> bytes:
    """The next chunk, pickled here: the worker unpickles it in its event loop's thread. Left to
    the pool, the objects were made in the pool's result thread, in its own malloc arena, and the
    worker's memory grew by about 0.5 MB a chunk that was never given back."""
    if _process_checker is None:
        raise RuntimeError("use_checker was not called in this process")
    return pickle.dumps(_process_checker.next_chunk(), protocol=pickle.HIGHEST_PROTOCOL)


def validation_reason(error: ValidationError) -> str:
    return problems_reason((problem["loc"], problem["msg"]) for problem in error.errors())


def problems_reason(problems: Iterable[tuple[Sequence[Any], str]]) -> str:
    """`field: message` for each of a record's problems (its location inside the record, its
    message), as the errors CSV lists them."""
    return "; ".join(f"{'.'.join(str(part) for part in loc) or 'record'}: {message}" for loc, message in problems)
