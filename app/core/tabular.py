"""Reading spreadsheets people export: CSV in whatever encoding and delimiter their tool chose,
or XLSX, one row at a time (a file is never held in memory whole).

CSV encodings: a BOM decides (UTF-8, UTF-16); otherwise a block's worth of lines from the first
line with non-ASCII bytes vote between UTF-8 and GB18030 (the superset of GBK and GB2312 that
Chinese Excel writes). Bytes the chosen encoding cannot read do not stop the file: they are kept
as surrogates (`surrogateescape`) and the row holding them fails alone, as does a UTF-8 row in a
GB18030 file, so a file with a few rows pasted in from another encoding loses only those rows.

A row the reader cannot make sense of fails alone, and reading goes on at the next record; when
the reader cannot tell where the next record starts (a quoted cell that does not end: a stray
quote), that row says so and is the last one read, so no row is ever made of a cell's contents.
"""

from __future__ import annotations

import codecs
import csv
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO, Final
from xml.etree.ElementTree import ParseError
from zipfile import BadZipFile

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

_SAMPLE_BYTES: Final = 64 * 1024
# The lines that vote on the encoding are held up to this size (one line can be longer).
_MAX_SAMPLE_BYTES: Final = 1024 * 1024
_NON_ASCII: Final = re.compile(rb"[\x80-\xff]")
_DELIMITERS: Final = (",", ";", "\t", "|")
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
# PostgreSQL text cannot hold U+0000.
_NUL: Final = "\x00"
_XLSX_MAGIC: Final = b"PK\x03\x04"
# Python's csv reader holds a cell whole while it reads it, up to its field limit: this many times
# the cell limit. A cell over the cell limit is still read to its end, so its row fails alone and
# the next record starts where it should; past this bound (a stray quote that swallows the rest of
# the file) reading stops, with the memory it takes bounded.
_FIELD_LIMIT_FACTOR: Final = 64
# What openpyxl raises on a damaged file (a cut-off or missing part, bad XML, bad compressed data).
_XLSX_DAMAGE: Final = (
    BadZipFile,
    InvalidFileException,
    KeyError,
    OSError,
    EOFError,
    zlib.error,
    ParseError,
    ValueError,
)


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


@dataclass(frozen=True, slots=True)
class _Record:
    """A record as the reader found it: its cells, or why it cannot be read; the lines of the file
    it spans (CSV); `last`: reading stopped at it, as nothing after it can be read reliably."""

    cells: list[str]
    problem: str | None = None
    first_line: int = 0
    last_line: int = 0
    last: bool = False


def detect(path: Path) -> FileFormat:
    with path.open("rb") as file:
        start = file.read(_SAMPLE_BYTES)
        if start.startswith(_XLSX_MAGIC):
            return FileFormat("xlsx")
        encoding = _encoding(start, file)
    text = start.decode(encoding, errors="ignore")
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first_line.count) if any(d in first_line for d in _DELIMITERS) else ","
    return FileFormat("csv", encoding, delimiter)


def _encoding(start: bytes, file: BinaryIO) -> str:
    """BOM, else UTF-8 when most lines with non-ASCII bytes are valid UTF-8 (a few pasted in from
    another encoding then fail alone), else GB18030. GBK text is almost never valid UTF-8, so a
    line that decodes as UTF-8 is strong evidence."""
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    lines, whole = _voting_lines(start, file)
    if not lines:
        return "utf-8"
    valid = sum(1 for line in lines if _decodes(line, "utf-8", final=whole))
    if valid * 2 >= len(lines):
        return "utf-8"
    return "gb18030" if _decodes(b"\n".join(lines), "gb18030", final=whole) else "utf-8"


def _voting_lines(start: bytes, file: BinaryIO) -> tuple[list[bytes], bool]:
    """The lines with non-ASCII bytes among a block's worth of lines from the first such line on,
    and whether they are whole. A file whose first rows are ASCII (an English header, ids, e-mails)
    is read on for them, a block at a time, keeping nothing of the ASCII. The file's last line
    counts, line break or not; only a single line longer than `_MAX_SAMPLE_BYTES` is cut."""
    block = start
    while block.isascii():
        block = file.read(_SAMPLE_BYTES)
        if not block:
            return [], True
    found = _NON_ASCII.search(block)
    assert found is not None  # the block is not ASCII
    # An ASCII start of that line, left in an earlier block, decodes the same in both encodings.
    sample = block[block.rfind(b"\n", 0, found.start()) + 1 :]
    while len(sample) < _MAX_SAMPLE_BYTES and (len(sample) < _SAMPLE_BYTES or b"\n" not in sample):
        more = file.read(_SAMPLE_BYTES)
        if not more:
            break
        sample += more
    lines = sample.split(b"\n")
    whole = True
    if file.read(1):  # the sample ends inside the file, and so may its last line
        if len(lines) > 1:
            lines.pop()
        else:
            whole = False
    return [line for line in lines if not line.isascii()], whole


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
            if first.problem is not None:
                raise TableError(f"The header row cannot be read: {first.problem}")
            header = _trimmed(first.cells)
            if not header:
                raise TableError("The first row (the header) is empty")
            if len(header) > self.limits.max_columns:
                raise TableError(f"The header has {len(header)} columns; the limit is {self.limits.max_columns}")
            if _UNDECODABLE.search("".join(header)):
                raise TableError(f"The header is not valid {self.format.encoding} text")
            if any(_NUL in cell for cell in header):
                raise TableError("The header holds a NUL character (U+0000)")
            return [cell.strip() for cell in header]
        raise TableError("The file is empty")

    def rows(self, *, skip: int = 0) -> Iterator[Row]:
        records = self._records()
        next(records, None)  # the header
        for ordinal, record in enumerate(records, start=1):
            if ordinal <= skip:
                continue
            row = self._row(ordinal + 1, record)
            if row.error is not None:
                row = Row(row.number, row.cells, row.error + _whereabouts(record))
            yield row

    def _row(self, number: int, record: _Record) -> Row:
        if record.problem is not None:
            return Row(number, [], record.problem)
        cells = _trimmed(record.cells)
        if not cells:
            return Row(number, [])  # blank: no cells and no error
        width = len(self.header)
        if len(cells) > width:
            return Row(number, [], f"The row has {len(cells)} cells; the header has {width} columns")
        if _UNDECODABLE.search("".join(cells)) or (self.format.encoding == "gb18030" and _foreign_utf8(cells)):
            return Row(number, [], f"The row is not valid {self.format.encoding} text (the file's encoding)")
        if any(len(cell) > self.limits.max_cell_chars for cell in cells):
            return Row(number, [], f"A cell is longer than the limit of {self.limits.max_cell_chars} characters")
        padded = cells + [""] * (width - len(cells))
        if any(_NUL in cell for cell in cells):
            # Its cells are kept for the errors CSV, which cannot hold U+0000 either.
            kept = [cell.replace(_NUL, "\ufffd") for cell in padded]
            return Row(
                number, kept, "A cell holds a NUL character (U+0000, shown here as U+FFFD), which cannot be stored"
            )
        return Row(number, padded)

    def count_rows(self) -> int:
        return sum(1 for _ in self._records()) - 1

    def _records(self) -> Iterator[_Record]:
        if self.format.kind == "xlsx":
            yield from self._xlsx_records()
        else:
            yield from self._csv_records()

    def _csv_records(self) -> Iterator[_Record]:
        field_limit = self.limits.max_cell_chars * _FIELD_LIMIT_FACTOR
        csv.field_size_limit(field_limit)
        encoding = self.format.encoding or "utf-8"
        with self.path.open(encoding=encoding, errors="surrogateescape", newline="") as file:
            lines = _LastLine(file)
            reader = csv.reader(lines, delimiter=self.format.delimiter, strict=True)
            while True:
                first_line = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    # The reader drops the rest of the line it failed on and starts its next
                    # record on the next line. After a character out of place behind a closing
                    # quote, that is the true next record, unless the rest it dropped opened a
                    # quoted cell (the line holds an odd count of quotes); after a cell cut off at
                    # the field limit it is inside that cell, and after the end of data there is
                    # nothing.
                    message = str(error)
                    resumable = "expected after" in message and lines.last.count('"') % 2 == 0
                    if "field limit" in message:
                        message = f"a cell is longer than {field_limit} characters"
                    yield _Record([], f"Unreadable row: {message}", first_line, reader.line_num, last=not resumable)
                    if not resumable:
                        return
                    continue
                yield _Record(cells, None, first_line, reader.line_num)

    def _xlsx_records(self) -> Iterator[_Record]:
        # A file object, not the path: openpyxl judges a path by its extension.
        with self.path.open("rb") as handle:
            try:
                workbook = load_workbook(handle, read_only=True, data_only=True)
            except _XLSX_DAMAGE as error:
                raise TableError(f"Not a readable XLSX file: {error}") from error
            try:
                if not workbook.worksheets:
                    raise TableError("Not a readable XLSX file: it has no worksheet")
                try:
                    rows = workbook.worksheets[0].iter_rows(values_only=True)
                    yield from _sheet_records(rows, self.limits.max_columns)
                except _XLSX_DAMAGE as error:
                    # The sheet is parsed as its rows are read: damage anywhere in it shows here.
                    raise TableError(f"Not a readable XLSX file: {error}") from error
            finally:
                workbook.close()


class _LastLine:
    """The lines of a file, remembering the last one given."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.last = ""

    def __iter__(self) -> _LastLine:
        return self

    def __next__(self) -> str:
        self.last = next(self._lines)
        return self.last


def _sheet_records(rows: Iterator[tuple[Any, ...]], max_columns: int) -> Iterator[_Record]:
    for values in rows:
        if len(values) > max_columns and any(value is not None for value in values[max_columns:]):
            yield _Record([], f"Unreadable row: the row has more than {max_columns} cells")
            continue
        yield _Record([_xlsx_text(value) for value in values])


def _whereabouts(record: _Record) -> str:
    """Where a failed row lies in the file when that is not plain: the lines a quoted cell holding
    line breaks spans (a stray quote swallows the lines after it), and that reading stopped."""
    where = ""
    if record.last_line > record.first_line:
        where += f"; a quoted cell runs from line {record.first_line} to line {record.last_line}"
    if record.last:
        where += (
            f"; the file cannot be read reliably past this row (line {record.first_line}):"
            " the rows after it were not imported"
        )
    return where


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
