"""Reading spreadsheets people export: CSV in whatever encoding and delimiter their tool chose,
or XLSX, one row at a time (a file is never held in memory whole).

CSV encodings: a BOM decides (UTF-8, UTF-16); otherwise the first block's non-ASCII lines vote
between UTF-8 and GB18030 (the superset of GBK and GB2312 that Chinese Excel writes). Bytes the
chosen encoding cannot read do not stop the file: they are kept as surrogates
(`surrogateescape`) and the row holding them fails alone, as does a UTF-8 row in a GB18030 file,
so a file with a few rows pasted in from another encoding loses only those rows.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Final
from zipfile import BadZipFile

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

_SAMPLE_BYTES: Final = 64 * 1024
_DELIMITERS: Final = (",", ";", "\t", "|")
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
_XLSX_MAGIC: Final = b"PK\x03\x04"


class TableError(ValueError):
    """The file cannot be read as a table at all (not a row: the whole file)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_columns: int
    max_cell_chars: int


@dataclass(frozen=True, slots=True)
class Row:
    """A data row: its number in the file (the header is row 1), and its cells (as many as the
    header has columns; none for a blank row) or why it cannot be read."""

    number: int
    cells: list[str]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FileFormat:
    kind: str  # csv | xlsx
    encoding: str | None = None
    delimiter: str = ","


def detect(path: Path) -> FileFormat:
    with path.open("rb") as file:
        sample = file.read(_SAMPLE_BYTES)
    if sample.startswith(_XLSX_MAGIC):
        return FileFormat("xlsx")
    encoding = _encoding(sample)
    text = sample.decode(encoding, errors="ignore")
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first_line.count) if any(d in first_line for d in _DELIMITERS) else ","
    return FileFormat("csv", encoding, delimiter)


def _encoding(sample: bytes) -> str:
    """BOM, else UTF-8 when most lines with non-ASCII bytes are valid UTF-8 (a few pasted in from
    another encoding then fail alone), else GB18030. GBK text is almost never valid UTF-8, so a
    line that decodes as UTF-8 is strong evidence."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    lines = [line for line in sample.split(b"\n")[:-1] or [sample] if not line.isascii()]
    if not lines:
        return "utf-8"
    valid = sum(1 for line in lines if _decodes(line, "utf-8"))
    if valid * 2 >= len(lines):
        return "utf-8"
    return "gb18030" if _decodes(sample, "gb18030", final=False) else "utf-8"


def _decodes(data: bytes, encoding: str, *, final: bool = True) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=final)
    except UnicodeDecodeError:
        return False
    return True


def _foreign_utf8(cells: list[str]) -> bool:
    """A row of a GB18030 file whose bytes are UTF-8 text (GB18030 decodes them, as nonsense)."""
    raw = "".join(cells).encode("gb18030", errors="surrogateescape")
    return not raw.isascii() and _decodes(raw, "utf-8")


class Table:
    """A header and the rows under it; `rows(skip=n)` starts after the first n data rows."""

    def __init__(self, path: Path, limits: Limits, file_format: FileFormat | None = None) -> None:
        self.path = path
        self.limits = limits
        self.format = file_format or detect(path)
        self.header = self._read_header()

    def _read_header(self) -> list[str]:
        for first in self._records():
            if isinstance(first, Exception):
                raise TableError(f"The header row cannot be read: {first}")
            header = _trimmed(first)
            if not header:
                raise TableError("The first row (the header) is empty")
            if len(header) > self.limits.max_columns:
                raise TableError(f"The header has {len(header)} columns; the limit is {self.limits.max_columns}")
            if _UNDECODABLE.search("".join(header)):
                raise TableError(f"The header is not valid {self.format.encoding} text")
            return [cell.strip() for cell in header]
        raise TableError("The file is empty")

    def rows(self, *, skip: int = 0) -> Iterator[Row]:
        records = self._records()
        next(records, None)  # the header
        width = len(self.header)
        for ordinal, record in enumerate(records, start=1):
            if ordinal <= skip:
                continue
            number = ordinal + 1
            if isinstance(record, Exception):
                yield Row(number, [], f"Unreadable row: {record}")
                continue
            cells = _trimmed(record)
            if not cells:
                yield Row(number, [])  # blank: no cells and no error
                continue
            if len(cells) > width:
                yield Row(number, [], f"The row has {len(cells)} cells; the header has {width} columns")
                continue
            if _UNDECODABLE.search("".join(cells)) or (self.format.encoding == "gb18030" and _foreign_utf8(cells)):
                yield Row(number, [], f"The row is not valid {self.format.encoding} text (the file's encoding)")
                continue
            if any(len(cell) > self.limits.max_cell_chars for cell in cells):
                yield Row(number, [], f"A cell is longer than the limit of {self.limits.max_cell_chars} characters")
                continue
            yield Row(number, cells + [""] * (width - len(cells)))

    def count_rows(self) -> int:
        return sum(1 for _ in self._records()) - 1

    def _records(self) -> Iterator[list[str] | Exception]:
        if self.format.kind == "xlsx":
            yield from self._xlsx_records()
        else:
            yield from self._csv_records()

    def _csv_records(self) -> Iterator[list[str] | Exception]:
        # A cell over the limit fails its row inside the reader, without being held whole.
        csv.field_size_limit(self.limits.max_cell_chars + 1)
        encoding = self.format.encoding or "utf-8"
        with self.path.open(encoding=encoding, errors="surrogateescape", newline="") as file:
            reader = csv.reader(file, delimiter=self.format.delimiter, strict=True)
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    yield error
                    continue
                yield record

    def _xlsx_records(self) -> Iterator[list[str] | Exception]:
        # A file object, not the path: openpyxl judges a path by its extension.
        with self.path.open("rb") as handle:
            try:
                workbook = load_workbook(handle, read_only=True, data_only=True)
            except (BadZipFile, InvalidFileException, KeyError, OSError) as error:
                raise TableError(f"Not a readable XLSX file: {error}") from error
            try:
                sheet = workbook.worksheets[0]
                limit = self.limits.max_columns
                for values in sheet.iter_rows(values_only=True):
                    if len(values) > limit and any(value is not None for value in values[limit:]):
                        yield ValueError(f"the row has more than {limit} cells")
                        continue
                    yield [_xlsx_text(value) for value in values]
            finally:
                workbook.close()


def _trimmed(cells: list[str]) -> list[str]:
    """Without the empty cells at the end (spreadsheets pad rows to the widest one)."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _xlsx_text(value: Any) -> str:
    """A typed XLSX cell as the text a CSV would hold: whole numbers without `.0` (phone numbers
    are often stored as numbers), dates in ISO form."""
    match value:
        case None:
            return ""
        case bool():
            return "true" if value else "false"
        case float() if value.is_integer():
            return str(int(value))
        case datetime() if value.time() == time(0):
            return value.date().isoformat()
        case datetime() | date() | time():
            return value.isoformat()
        case _:
            return str(value)
