"""How an import's columns become a record's fields: automatic header mapping (English and the
brief's Chinese templates), and each cell's conversion (names split, dates in many forms, tags,
yes/no, numbers with separators).

A mapping is `{column header: target}`. Targets are the entity's fields (`email`, `title`…),
`name` (a full name, split into first and last), `owner` (a user's e-mail), `company.name`,
`company.external_id`, `company.domain`, `company.industry` (a contacts import links each
contact to that company, creating it when missing), `customer_id` (the brief's `客户ID`: the
company's external_id when the row names a company, else the contact's), and
`custom_fields.<key>`. A column mapped to null (or not mapped) is ignored.

Deals (the brief's opportunity table) take `external_id` (`机会ID`), `name` (`产品名称`),
`company.external_id` (`客户ID`; `customer_id` means the same: the deal's company, which must
exist), `stage` (a stage of the default pipeline, by name), `amount` (a decimal: separators,
`¥`/`元` and `万` allowed), `currency`, `expected_close_date`, `owner` (a user's e-mail or full
name), `tags`, `lost_reason` and `custom_fields.<key>`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from app.core.enums import CustomFieldType
from app.core.tabular import Row

if TYPE_CHECKING:
    from app.models.custom_field import CustomFieldDefinition

CUSTOM_PREFIX: Final = "custom_fields."
COMPANY_PREFIX: Final = "company."
REGISTRATION_DATE: Final = "registration_date"

_COMMON_TARGETS: Final = frozenset(
    {
        "external_id",
        "phone",
        "city",
        "region",
        "country",
        "address_line1",
        "address_line2",
        "postal_code",
        "tags",
        "owner",
        "customer_id",
    }
)
TARGETS: Final[dict[str, frozenset[str]]] = {
    "contacts": _COMMON_TARGETS
    | {
        "first_name",
        "last_name",
        "name",
        "title",
        "email",
        "lifecycle_stage",
        "email_opt_in",
        "email_opt_in_source",
        "company.name",
        "company.external_id",
        "company.domain",
        "company.industry",
    },
    "companies": _COMMON_TARGETS | {"name", "domain", "industry", "size"},
    "deals": frozenset(
        {
            "external_id",
            "name",
            "company.external_id",
            "customer_id",
            "stage",
            "amount",
            "currency",
            "expected_close_date",
            "owner",
            "tags",
            "lost_reason",
        }
    ),
}

# Normalised header (see `_header_key`) → target. Chinese headers follow the brief's templates.
_SYNONYMS: Final[dict[str, dict[str, str]]] = {
    "contacts": {
        "firstname": "first_name",
        "givenname": "first_name",
        "名": "first_name",
        "名字": "first_name",
        "lastname": "last_name",
        "surname": "last_name",
        "familyname": "last_name",
        "姓": "last_name",
        "姓氏": "last_name",
        "name": "name",
        "fullname": "name",
        "contact": "name",
        "contactname": "name",
        "联系人": "name",
        "姓名": "name",
        "联系人姓名": "name",
        "客户姓名": "name",
        "title": "title",
        "jobtitle": "title",
        "position": "title",
        "职位": "title",
        "职务": "title",
        "email": "email",
        "emailaddress": "email",
        "mail": "email",
        "邮箱": "email",
        "电子邮箱": "email",
        "电子邮件": "email",
        "lifecyclestage": "lifecycle_stage",
        "emailoptin": "email_opt_in",
        "company": "company.name",
        "companyname": "company.name",
        "account": "company.name",
        "accountname": "company.name",
        "organization": "company.name",
        "公司": "company.name",
        "公司名称": "company.name",
        "客户名称": "company.name",
        "单位": "company.name",
        "companyexternalid": "company.external_id",
        "companydomain": "company.domain",
        "website": "company.domain",
        "网站": "company.domain",
        "industry": "company.industry",
        "行业": "company.industry",
    },
    "companies": {
        "name": "name",
        "company": "name",
        "companyname": "name",
        "account": "name",
        "accountname": "name",
        "公司": "name",
        "公司名称": "name",
        "客户名称": "name",
        "domain": "domain",
        "website": "domain",
        "网站": "domain",
        "industry": "industry",
        "行业": "industry",
        "size": "size",
        "规模": "size",
    },
}
# Deals take only these (the shared synonyms are contact and company fields).
_DEAL_SYNONYMS: Final[dict[str, str]] = {
    "机会id": "external_id",
    "机会编号": "external_id",
    "商机id": "external_id",
    "商机编号": "external_id",
    "dealid": "external_id",
    "opportunityid": "external_id",
    "externalid": "external_id",
    "客户id": "company.external_id",
    "客户编号": "company.external_id",
    "customerid": "company.external_id",
    "companyid": "company.external_id",
    "accountid": "company.external_id",
    "companyexternalid": "company.external_id",
    "产品名称": "name",
    "产品": "name",
    "机会名称": "name",
    "商机名称": "name",
    "name": "name",
    "dealname": "name",
    "opportunity": "name",
    "opportunityname": "name",
    "product": "name",
    "productname": "name",
    "阶段": "stage",
    "销售阶段": "stage",
    "stage": "stage",
    "dealstage": "stage",
    "预计金额": "amount",
    "金额": "amount",
    "amount": "amount",
    "value": "amount",
    "dealvalue": "amount",
    "expectedamount": "amount",
    "币种": "currency",
    "currency": "currency",
    "截止日期": "expected_close_date",
    "预计成交日期": "expected_close_date",
    "closedate": "expected_close_date",
    "expectedclosedate": "expected_close_date",
    "duedate": "expected_close_date",
    "负责人": "owner",
    "owner": "owner",
    "owneremail": "owner",
    "标签": "tags",
    "tags": "tags",
    "输单原因": "lost_reason",
    "lostreason": "lost_reason",
}
_SHARED_SYNONYMS: Final[dict[str, str]] = {
    "externalid": "external_id",
    "customerid": "customer_id",
    "客户id": "customer_id",
    "客户编号": "customer_id",
    "phone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "tel": "phone",
    "电话": "phone",
    "手机": "phone",
    "手机号": "phone",
    "联系电话": "phone",
    "city": "city",
    "城市": "city",
    "region": "region",
    "province": "region",
    "state": "region",
    "省份": "region",
    "country": "country",
    "国家": "country",
    "address": "address_line1",
    "street": "address_line1",
    "地址": "address_line1",
    "postalcode": "postal_code",
    "zip": "postal_code",
    "zipcode": "postal_code",
    "postcode": "postal_code",
    "邮编": "postal_code",
    "tags": "tags",
    "标签": "tags",
    "owner": "owner",
    "owneremail": "owner",
    "负责人": "owner",
    "registrationdate": CUSTOM_PREFIX + REGISTRATION_DATE,
    "注册日期": CUSTOM_PREFIX + REGISTRATION_DATE,
    "注册时间": CUSTOM_PREFIX + REGISTRATION_DATE,
}

_PARENTHESISED: Final = re.compile(r"[(（].*?[)）]")
_HEADER_NOISE: Final = re.compile(r"[\s_\-.:：]+")
_LIST_SEPARATORS: Final = re.compile(r"[,;，；、|]")
_MASK: Final = re.compile(r"^\*+$")
# What an import keeps of a secret cell (a mask, so that the errors CSV can be imported again).
WITHHELD: Final = "***"
_HONORIFICS: Final = ("先生", "女士", "小姐", "老师")
_COMPOUND_SURNAMES: Final = frozenset(
    [
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "闻人",
        "澹台",
        "单于",
        "南宫",
        "西门",
    ]
)
_CJK: Final = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TRUE: Final = frozenset({"true", "yes", "y", "1", "是", "对", "x", "✓"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "否", "不"})
_EXCEL_EPOCH: Final = date(1899, 12, 30)


class CellError(ValueError):
    """A cell that cannot become its field's value; the message names the column."""


def _header_key(header: str) -> str:
    text = unicodedata.normalize("NFKC", header).casefold()
    return _HEADER_NOISE.sub("", _PARENTHESISED.sub("", text))


def auto_map(header: Sequence[str], entity: str, definitions: Mapping[str, CustomFieldDefinition]) -> dict[str, str]:
    """Targets for the headers this module recognises (custom fields by key or label); a target
    is given to the first column that claims it."""
    synonyms = _DEAL_SYNONYMS if entity == "deals" else _SHARED_SYNONYMS | _SYNONYMS[entity]
    by_label = {_header_key(d.label): CUSTOM_PREFIX + key for key, d in definitions.items()}
    by_label |= {_header_key(key): CUSTOM_PREFIX + key for key in definitions}
    mapping: dict[str, str] = {}
    for column in header:
        key = _header_key(column)
        target = synonyms.get(key) or by_label.get(key)
        if target and target not in mapping.values() and column not in mapping:
            mapping[column] = target
    return mapping


def check_mapping(mapping: Mapping[str, str | None], header: Sequence[str], entity: str) -> list[str]:
    """Why a mapping cannot be used (empty when it can)."""
    problems = []
    columns = set(header)
    allowed = TARGETS[entity]
    seen: dict[str, str] = {}
    for column, target in mapping.items():
        if column not in columns:
            problems.append(f"column {column!r} is not in the file's header")
        if target is None:
            continue
        if target not in allowed and not (target.startswith(CUSTOM_PREFIX) and len(target) > len(CUSTOM_PREFIX)):
            problems.append(f"column {column!r}: {target!r} is not a field of {entity}")
        if target in seen:
            problems.append(f"columns {seen[target]!r} and {column!r} are both mapped to {target!r}")
        seen[target] = column
    return problems


@dataclass(frozen=True, slots=True)
class CompanyRef:
    """The company a contacts row names: matched by external_id, else by exact name."""

    name: str | None
    external_id: str | None
    domain: str | None
    industry: str | None

    @property
    def key(self) -> tuple[str, str]:
        return ("external_id", self.external_id) if self.external_id else ("name", self.name or "")


@dataclass(slots=True)
class RowValues:
    record: dict[str, Any] = field(default_factory=dict)
    owner_email: str | None = None
    owner_name: str | None = None  # deals: a user's full name
    company: CompanyRef | None = None
    stage: str | None = None  # deals: a stage name of the default pipeline


@dataclass(frozen=True, slots=True)
class Converter:
    """Turns a row's cells into a record, following a resolved mapping."""

    entity: str
    columns: list[tuple[int, str]]  # (position, target)
    column_of: dict[str, str]  # target → header, for messages
    # Custom field key → its type: plain values, so a converter can be sent to another process.
    field_types: Mapping[str, CustomFieldType]
    # The positions of the columns mapped to secret custom fields.
    secret_positions: tuple[int, ...] = ()

    @classmethod
    def build(
        cls,
        header: Sequence[str],
        mapping: Mapping[str, str | None],
        entity: str,
        definitions: Mapping[str, CustomFieldDefinition],
    ) -> Converter:
        position = {column: index for index, column in reversed(list(enumerate(header)))}
        targets = {column: target for column, target in mapping.items() if target}
        columns = [(position[column], target) for column, target in targets.items()]
        column_of = {target: column for column, target in targets.items()}
        field_types = {key: definition.type for key, definition in definitions.items()}
        secret_positions = tuple(
            index
            for index, target in columns
            if target.startswith(CUSTOM_PREFIX)
            and field_types.get(target.removeprefix(CUSTOM_PREFIX)) == CustomFieldType.secret
        )
        return cls(entity, columns, column_of, field_types, secret_positions)

    def withheld(self, row: Row) -> Row:
        """The row as an import keeps it for its errors CSV: the cells of columns mapped to secret
        custom fields masked (`***`, which an import skips), as every listing withholds them."""
        # A row the reader failed may have fewer cells than the header has columns.
        held = [position for position in self.secret_positions if position < len(row.cells) and row.cells[position]]
        if not held:
            return row
        cells = list(row.cells)
        for position in held:
            cells[position] = WITHHELD
        return Row(row.number, cells, row.error)

    def convert(self, cells: Sequence[str]) -> RowValues:
        values = RowValues()
        given: dict[str, str] = {}
        for position, target in self.columns:
            cell = cells[position].strip()
            if cell and not _MASK.match(cell):  # `*` is the brief's mask for withheld data
                given[target] = cell
        company_fields = {k.removeprefix(COMPANY_PREFIX): v for k, v in given.items() if k.startswith(COMPANY_PREFIX)}
        if "customer_id" in given:
            # A deal's 客户ID is its company's; a contact's too when the row names a company.
            if self.entity == "deals" or (self.entity == "contacts" and company_fields.get("name")):
                company_fields.setdefault("external_id", given["customer_id"])
            else:
                given.setdefault("external_id", given["customer_id"])
        if company_fields.get("name") or company_fields.get("external_id"):
            values.company = CompanyRef(
                name=company_fields.get("name"),
                external_id=company_fields.get("external_id"),
                domain=company_fields.get("domain"),
                industry=company_fields.get("industry"),
            )
        record = values.record
        for target, cell in given.items():
            if target.startswith(COMPANY_PREFIX) or target == "customer_id":
                continue
            try:
                if target == "name" and self.entity == "contacts":
                    first, last = split_name(cell)
                    record.setdefault("first_name", first)
                    record.setdefault("last_name", last)
                elif target == "owner":
                    if self.entity == "deals" and "@" not in cell:
                        values.owner_name = " ".join(cell.split())
                    else:
                        values.owner_email = cell.lower()
                elif target == "stage":
                    values.stage = cell
                elif target == "amount":
                    record["amount"] = str(parse_amount(cell))
                elif target == "expected_close_date":
                    record["expected_close_date"] = parse_date(cell).isoformat()
                elif target == "tags":
                    record["tags"] = [tag.strip() for tag in _LIST_SEPARATORS.split(cell) if tag.strip()]
                elif target == "email_opt_in":
                    record["email_opt_in"] = parse_bool(cell)
                elif target.startswith(CUSTOM_PREFIX):
                    key = target.removeprefix(CUSTOM_PREFIX)
                    record.setdefault("custom_fields", {})[key] = self._custom(key, cell)
                else:
                    record[target] = cell
            except ValueError as error:
                raise CellError(f"{self.column_of[target]}: {error}") from error
        return values

    def _custom(self, key: str, cell: str) -> Any:
        field_type = self.field_types.get(key)
        if field_type is None:
            return cell  # refused with the field's own message when the record is checked
        match field_type:
            case CustomFieldType.number:
                return parse_number(cell)
            case CustomFieldType.boolean:
                return parse_bool(cell)
            case CustomFieldType.date:
                return parse_date(cell).isoformat()
            case CustomFieldType.multi_select:
                return [part.strip() for part in _LIST_SEPARATORS.split(cell) if part.strip()]
        return cell


def split_name(full: str) -> tuple[str | None, str | None]:
    """(first, last): 张伟 → (伟, 张), 欧阳娜娜 → (娜娜, 欧阳), 王先生 → (None, 王),
    "Wei Zhang" → (Wei, Zhang), "Zhang, Wei" → (Wei, Zhang)."""
    name = " ".join(full.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip() or None, last.strip() or None
    if _CJK.search(name) and " " not in name:
        for honorific in _HONORIFICS:
            if name.endswith(honorific) and len(name) > len(honorific):
                return None, name.removesuffix(honorific)
        surname_length = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
        return name[surname_length:] or None, name[:surname_length]
    first, _, last = name.rpartition(" ")
    return (first or None, last) if first else (None, last)


def parse_bool(cell: str) -> bool:
    text = cell.strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{cell!r} is not yes or no")


def parse_number(cell: str) -> int | float:
    text = unicodedata.normalize("NFKC", cell).strip().replace(",", "").replace(" ", "")
    try:
        number = float(text)
    except ValueError as error:
        raise ValueError(f"{cell!r} is not a number") from error
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{cell!r} is not a number")
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


_CURRENCY_MARKS: Final = re.compile(r"^(?:¥|rmb|cny)|(?:元|rmb|cny)$")


def parse_amount(cell: str) -> Decimal:
    """A money amount, exactly: 150,000, 80000.50, ¥150,000, 150000元, 15万 (× 10,000)."""
    text = unicodedata.normalize("NFKC", cell).strip().casefold().replace(",", "").replace(" ", "")
    text = _CURRENCY_MARKS.sub("", _CURRENCY_MARKS.sub("", text))
    scale = Decimal(1)
    if text.endswith("万"):
        text, scale = text.removesuffix("万"), Decimal(10000)
    try:
        amount = Decimal(text) * scale
    except InvalidOperation:
        raise ValueError(f"{cell!r} is not an amount") from None
    if not amount.is_finite() or "e" in text:
        raise ValueError(f"{cell!r} is not an amount")
    return amount


_DATE_FORMATS: Final = (
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"), "ymd"),
    (re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"), "ymd"),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), "ymd"),
    (re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$"), "dmy"),
    (re.compile(r"^(\d{1,2})[/-](\d{1,2})[/-](\d{4})$"), "either"),
)
# Excel's serials run to 2958465 (9999-12-31), but one of more digits than this (past 99999,
# 2173-10-13) in a date column is a YYYYMM month (202301) or an id, not a date.
_EXCEL_SERIAL_DIGITS: Final = 5


def parse_date(cell: str) -> date:
    """2023-01-15, 2023/1/15, 2023.1.15, 2023年1月15日, 20230115, 15.01.2023, 15/01/2023 (day
    first or month first when only one reading is a date), ISO date-times, and Excel serial
    numbers of up to 5 digits (days since 1899-12-30, as a date cell copied as a number shows)."""
    text = unicodedata.normalize("NFKC", cell).strip()
    for pattern, order in _DATE_FORMATS:
        match = pattern.match(text)
        if match is None:
            continue
        a, b, c = (int(part) for part in match.groups())
        if order == "ymd":
            return _date(a, b, c, cell)
        if order == "dmy":
            return _date(c, b, a, cell)
        readings = {d for d in (_maybe_date(c, b, a), _maybe_date(c, a, b)) if d is not None}
        if len(readings) == 1:
            return readings.pop()
        if readings:
            raise ValueError(f"{cell!r} is ambiguous (day/month or month/day); write it as YYYY-MM-DD")
        raise ValueError(f"{cell!r} is not a date")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        if len(text.partition(".")[0]) > _EXCEL_SERIAL_DIGITS:
            raise ValueError(
                f"{cell!r} is not a date: a number is read as an Excel date only up to"
                f" {_EXCEL_SERIAL_DIGITS} digits (use YYYY-MM-DD)"
            )
        serial = float(text)
        if serial >= 1:
            return _EXCEL_EPOCH + timedelta(days=int(serial))
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"{cell!r} is not a date (use YYYY-MM-DD)") from None


def _maybe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _date(year: int, month: int, day: int, cell: str) -> date:
    found = _maybe_date(year, month, day)
    if found is None:
        raise ValueError(f"{cell!r} is not a date")
    return found
