"""The import mapping layer: headers, names, dates, yes/no and numbers, and reading odd files."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from app.core.tabular import Limits, Row, Table, TableError, detect
from app.services.import_mapping import auto_map, check_mapping, parse_bool, parse_date, parse_number, split_name

LIMITS = Limits(max_columns=50, max_cell_chars=1000)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2023-01-15", date(2023, 1, 15)),
        ("2023/1/15", date(2023, 1, 15)),
        ("2023.01.15", date(2023, 1, 15)),
        ("2023年1月15日", date(2023, 1, 15)),
        ("20230115", date(2023, 1, 15)),
        ("15.01.2023", date(2023, 1, 15)),
        ("15/01/2023", date(2023, 1, 15)),
        ("01/15/2023", date(2023, 1, 15)),
        ("44941", date(2023, 1, 15)),
        ("44941.5", date(2023, 1, 15)),
        ("99999", date(2173, 10, 13)),
        ("2023-01-15T08:30:00", date(2023, 1, 15)),
        ("２０２３－０１－１５", date(2023, 1, 15)),
    ],
)
def test_dates_in_the_forms_people_write_them(cell: str, expected: date) -> None:
    assert parse_date(cell) == expected


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("01/02/2023", "ambiguous"),
        ("2023-02-30", "not a date"),
        ("yesterday", "not a date"),
        ("32/13/2023", "not a date"),
        ("202301", "not a date: a number is read as an Excel date only up to 5 digits"),
        ("1234567.5", "not a date: a number is read as an Excel date only up to 5 digits"),
    ],
)
def test_dates_that_are_not_or_could_be_two_are_refused(cell: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_date(cell)


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("张伟", ("伟", "张")),
        ("欧阳娜娜", ("娜娜", "欧阳")),
        ("王先生", (None, "王")),
        ("李女士", (None, "李")),
        ("Wei Zhang", ("Wei", "Zhang")),
        ("Zhang, Wei", ("Wei", "Zhang")),
        ("Ada  King Lovelace", ("Ada King", "Lovelace")),
        ("Madonna", (None, "Madonna")),
        ("王", (None, "王")),
    ],
)
def test_full_names_split_into_first_and_last(full: str, expected: tuple[str | None, str | None]) -> None:
    assert split_name(full) == expected


def test_yes_no_and_numbers() -> None:
    assert [parse_bool(v) for v in ("是", "否", "Yes", "0", "TRUE")] == [True, False, True, False, True]
    with pytest.raises(ValueError, match="not yes or no"):
        parse_bool("maybe")
    assert parse_number("50,000") == 50000 and parse_number("3.5") == 3.5 and parse_number("１２") == 12
    with pytest.raises(ValueError, match="not a number"):
        parse_number("fifty")


def test_headers_map_in_english_and_chinese_and_each_field_once() -> None:
    header = ["First Name", "last_name", "E-Mail", "手机号", "阶段(如潜在/成交)", "Email", "公司名称"]
    assert auto_map(header, "contacts", {}) == {
        "First Name": "first_name",
        "last_name": "last_name",
        "E-Mail": "email",
        "手机号": "phone",
        "公司名称": "company.name",
    }
    assert check_mapping({"x": "email", "E-Mail": "email"}, header, "contacts") == [
        "column 'x' is not in the file's header",
        "columns 'x' and 'E-Mail' are both mapped to 'email'",
    ]


def _table(tmp_path: Path, content: bytes) -> Table:
    path = tmp_path / "file.csv"
    path.write_bytes(content)
    return Table(path, LIMITS)


def test_a_utf8_file_with_a_row_in_gbk_loses_only_that_row(tmp_path: Path) -> None:
    content = "姓名,城市\n张伟,上海\n".encode() + "李娜,北京\n".encode("gbk") + "王芳,天津\n".encode()
    table = _table(tmp_path, content)
    assert table.format.encoding == "utf-8"
    rows = list(table.rows())
    assert [r.cells for r in rows if not r.error] == [["张伟", "上海"], ["王芳", "天津"]]
    [bad] = [r for r in rows if r.error]
    assert bad.number == 3 and "not valid utf-8" in bad.error


def test_a_gbk_file_with_a_row_in_utf8_loses_only_that_row(tmp_path: Path) -> None:
    content = "姓名,城市\n张伟,上海\n王芳,天津\n".encode("gbk") + "李娜,北京\n".encode()
    table = _table(tmp_path, content)
    assert table.format.encoding == "gb18030"
    rows = list(table.rows())
    assert [r.cells for r in rows if not r.error] == [["张伟", "上海"], ["王芳", "天津"]]
    assert [r.number for r in rows if r.error] == [4]


def test_delimiters_bom_utf16_and_resuming_after_n_rows(tmp_path: Path) -> None:
    table = _table(tmp_path, "\ufeffa;b\n1;2\n3;4\n5;6\n".encode())
    assert (table.format.encoding, table.format.delimiter, table.header) == ("utf-8-sig", ";", ["a", "b"])
    assert [r.cells for r in table.rows(skip=2)] == [["5", "6"]] and table.count_rows() == 3
    utf16 = _table(tmp_path, "名\t值\n甲\t1\n".encode("utf-16"))
    assert utf16.header == ["名", "值"] and [r.cells for r in utf16.rows()] == [["甲", "1"]]


def test_files_that_are_not_tables(tmp_path: Path) -> None:
    for content, message in [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"PK\x03\x04not really a zip", "Not a readable XLSX"),
        (",".join(f"c{i}" for i in range(51)).encode(), "limit is 50"),
    ]:
        path = tmp_path / "bad.csv"
        path.write_bytes(content)
        with pytest.raises(TableError, match=message):
            Table(path, LIMITS)
    assert detect(path).kind == "csv"


def test_a_cell_over_the_limit_fails_its_row_alone_and_reading_resumes_at_the_next_record(tmp_path: Path) -> None:
    """The cell is read to its end, so nothing inside it (here, what looks like a row) becomes one."""
    cell = "x" * 1200 + "\nPhantom,phantom@example.com\n" + "y" * 10
    table = _table(tmp_path, f'name,note\nLong,"{cell}"\nReal,after\n'.encode())
    rows = list(table.rows())
    assert [(row.number, row.cells) for row in rows] == [(2, []), (3, ["Real", "after"])]
    assert rows[0].error == (
        "A cell is longer than the limit of 1000 characters; a quoted cell runs from line 2 to line 4"
    )
    assert table.count_rows() == 2


@pytest.mark.parametrize(
    ("max_cell_chars", "problem", "last_line"),
    [
        (1000, "Unreadable row: unexpected end of data", "3001"),  # the file ends inside the cell
        (100, "Unreadable row: a cell is longer than 6400 characters", r"\d+"),  # 64 times the limit
    ],
)
def test_a_stray_quote_that_swallows_the_file_stops_reading_where_the_row_says(
    tmp_path: Path, max_cell_chars: int, problem: str, last_line: str
) -> None:
    lines = [f"Name{index},n{index}@a.cn,t" for index in range(3000)]
    lines[1] = 'Stray,"Quote,sq0@a.cn,t'
    path = tmp_path / "file.csv"
    path.write_text("name,email,tag\n" + "\n".join(lines) + "\n", encoding="utf-8")
    table = Table(path, Limits(max_columns=50, max_cell_chars=max_cell_chars))
    first, stray = table.rows()
    assert first == Row(2, ["Name0", "n0@a.cn", "t"])
    assert stray.number == 3 and stray.cells == [] and stray.error is not None
    assert re.fullmatch(
        re.escape(problem)
        + f"; a quoted cell runs from line 3 to line {last_line}"
        + re.escape("; the file cannot be read reliably past this row (line 3): the rows after it were not imported"),
        stray.error,
    ), stray.error
    assert table.count_rows() == 2


def test_a_quote_out_of_place_fails_its_row_alone_unless_its_line_opens_another_cell(tmp_path: Path) -> None:
    """The reader goes on at the next line: the next record, unless the line's dropped rest opened
    a quoted cell (an odd count of quotes), whose second line would become a row."""
    table = _table(tmp_path, b'name,note\n"A"a,1\nB,2\n"C"c,"multi\nline",3\nD,4\n')
    rows = list(table.rows())
    assert [(row.number, row.cells) for row in rows] == [(2, []), (3, ["B", "2"]), (4, [])]
    assert rows[0].error == "Unreadable row: ',' expected after '\"'"
    assert rows[2].error is not None and rows[2].error.endswith("the rows after it were not imported")
    assert table.count_rows() == 3


def test_a_nul_character_fails_its_row_alone_with_its_cells_kept_storable(tmp_path: Path) -> None:
    table = _table(tmp_path, b"name,note\nA,a\x00b\nB,ok\n")
    bad, good = table.rows()
    assert bad.cells == ["A", "a\ufffdb"]
    assert bad.error is not None and "NUL character (U+0000" in bad.error
    assert good == Row(3, ["B", "ok"])
    with pytest.raises(TableError, match="NUL character"):
        _table(tmp_path, b"na\x00me,note\nA,b\n")


def test_the_encoding_is_found_past_an_ascii_start_and_in_the_last_line(tmp_path: Path) -> None:
    """A GBK file whose first rows are ASCII (more than the first block read) is GBK; so is a
    one-row GBK file without a line break at its end."""
    ascii_rows = "".join(f"C{index:05},c{index}@example.com\n" for index in range(5000)).encode()
    assert len(ascii_rows) > 64 * 1024
    late = _table(tmp_path, b"id,name\n" + ascii_rows + "C99999,张伟\n".encode("gbk"))
    assert late.format.encoding == "gb18030"
    assert [row.cells for row in late.rows()][-1] == ["C99999", "张伟"]
    one_row = _table(tmp_path, b"name,city\n" + "张伟,上海".encode("gbk"))
    assert one_row.format.encoding == "gb18030"
    assert [row.cells for row in one_row.rows()] == [["张伟", "上海"]]
