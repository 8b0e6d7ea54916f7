"""CSV for spreadsheets: records flattened to cells, and cells that a spreadsheet would run as a
formula (`=`, `+`, `-`, `@`, tab, carriage return first) prefixed with `'` (OWASP's advice on
CSV injection). UTF-8 with a byte-order mark, so Excel reads Chinese text as such."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    text = _text(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(
            _text(next(iter(item.values()), "")) if isinstance(item, dict) else _text(item) for item in value
        )
    return str(value)


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """One level deep: `custom_fields` become `custom_fields.<key>` columns."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                flat[f"{key}.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def header(columns: Sequence[str]) -> str:
    """The first line of a file written row by row with `line`, byte-order mark included."""
    return "\ufeff" + line(columns)


def line(cells: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


def render(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in columns])
    return ("\ufeff" + buffer.getvalue()).encode()
