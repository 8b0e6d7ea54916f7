"""Contract templates and the sandbox their documents are rendered in.

Templates are Jinja2 HTML written by an organisation's users, so they are untrusted code: they run
in Jinja's SandboxedEnvironment (no `__class__`-style escapes, no unsafe methods) with
autoescaping on (a company named `<script>` prints as text). The sandbox does not bound work, so
rendering does: a trace function stops it at a deadline (it sees every line the template's
compiled Python runs, loops included), the output is counted as it streams and stopped at a
cap, and repetition and powers (`'x' * n`, `9 ** n`: single C calls a deadline cannot
interrupt) are refused beyond a size. Renders run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import date
from decimal import Decimal
from types import FrameType
from typing import Any, Final

from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction
from app.core.errors import FieldError, ValidationFailed
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import get_settings
from app.models.company import Company
from app.models.contract import ContractTemplate
from app.models.deal import Deal
from app.schemas.contract import ContractTemplateCreate, ContractTemplateUpdate

LABEL: Final = "contract_template"
# Integers a template may build by multiplying or raising to a power, in bits.
_MAX_INT_BITS: Final = 4096

DEFAULT_TEMPLATE: Final = """<!DOCTYPE html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>{{ contract.number }} {{ contract.title }}</title></head>
<body>
<h1>{{ contract.title }}</h1>
<p>合同编号：{{ contract.number }}</p>
<p>甲方：{{ company.name }}{% if company.address %}（{{ company.address }}）{% endif %}</p>
<p>乙方：{{ organization.name }}</p>
<p>合同金额：{{ contract.currency }} {{ contract.value }}</p>
<p>合同期限：{{ contract.start_date }} 至 {{ contract.end_date }}</p>
{% if line_items %}
<table>
<thead><tr><th>项目</th><th>数量</th><th>单价</th><th>折扣 %</th><th>金额</th></tr></thead>
<tbody>
{% for item in line_items %}
<tr><td>{{ item.name }}</td><td>{{ item.quantity }}</td><td>{{ item.unit_price }}</td>\
<td>{{ item.discount_percent }}</td><td>{{ item.amount }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endif %}
<p>甲方（签章）：______________　　乙方（签章）：______________</p>
</body>
</html>
"""


class TemplateFailed(Exception):
    """The template does not compile, does something the sandbox forbids, or exceeds a bound."""


class _OutOfTime(BaseException):
    """Raised into the template's frames by the trace function; a BaseException, so no
    `except Exception` on the way (in Jinja or in a filter) can swallow it."""


def _too_big(operator: str, left: Any, right: Any, max_chars: int) -> bool:
    if operator == "**":
        return isinstance(left, int) and isinstance(right, int) and abs(left).bit_length() * abs(right) > _MAX_INT_BITS
    if isinstance(left, int) and isinstance(right, int):
        return left.bit_length() + right.bit_length() > _MAX_INT_BITS
    sequence, times = (left, right) if isinstance(right, int) else (right, left)
    return isinstance(sequence, str | list | tuple) and isinstance(times, int) and len(sequence) * times > max_chars


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *, max_chars: int) -> None:
        super().__init__(autoescape=True)
        self.max_chars = max_chars

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if _too_big(operator, left, right, self.max_chars):
            raise SecurityError(f"the result of {operator} is too large")
        return super().call_binop(context, operator, left, right)


def render_now(source: str, context: dict[str, Any], *, max_chars: int, timeout_seconds: float) -> str:
    """Renders in the calling thread, within the bounds; `TemplateFailed` says why it could not."""
    deadline = time.monotonic() + timeout_seconds

    def stop_when_late(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _OutOfTime
        return stop_when_late

    previous = sys.gettrace()
    sys.settrace(stop_when_late)
    try:
        template = _Sandbox(max_chars=max_chars).from_string(source)
        parts: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > max_chars:
                raise TemplateFailed(f"the document would be longer than {max_chars} characters")
            parts.append(chunk)
        return "".join(parts)
    except TemplateSyntaxError as exc:
        raise TemplateFailed(f"line {exc.lineno}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateFailed(f"not allowed in a template: {exc}") from None
    except _OutOfTime:
        raise TemplateFailed(f"rendering took longer than {timeout_seconds:g} s") from None
    except TemplateFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - the template is user code: any failure of it is the user's to fix
        raise TemplateFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        sys.settrace(previous)


async def render(source: str, context: dict[str, Any]) -> str:
    settings = get_settings()
    return await asyncio.to_thread(
        render_now,
        source,
        context,
        max_chars=settings.contracts_document_max_chars,
        timeout_seconds=settings.contracts_render_timeout_seconds,
    )


def _plain(quantity: Decimal) -> Decimal:
    """3.0000 as 3 and 1.5000 as 1.5 (never 1E+2, as `normalize` alone gives for 100)."""
    return quantity.quantize(Decimal(1)) if quantity == quantity.to_integral_value() else quantity.normalize()


def context(
    *, contract: dict[str, Any], company: Company | None, deal: Deal | None, organization_name: str
) -> dict[str, Any]:
    """What a template sees: plain values, never ORM objects (nothing to reach the database through)."""
    company_values: dict[str, Any] = {}
    if company is not None:
        address_parts = [company.address_line1, company.address_line2, company.city, company.region]
        company_values = {
            "name": company.name,
            "address": " ".join(part for part in address_parts if part),
            "postal_code": company.postal_code,
            "country": company.country,
        }
    return {
        "organization": {"name": organization_name},
        "contract": contract,
        "company": company_values,
        "deal": {"name": deal.name, "amount": deal.amount, "currency": deal.currency} if deal is not None else None,
        "line_items": [
            {
                "name": item.name,
                "quantity": _plain(item.quantity),
                "unit_price": item.unit_price,
                "discount_percent": item.discount_percent,
                "amount": item.amount,
            }
            for item in (deal.line_items if deal is not None else [])
        ],
    }


# A template is tried on these before it is kept.
SAMPLE_CONTEXT: Final = {
    "organization": {"name": "示例科技"},
    "contract": {
        "number": "HT-2026-0001",
        "title": "年度服务合同",
        "status": "draft",
        "value": Decimal("150000.00"),
        "currency": "CNY",
        "start_date": date(2026, 1, 1),
        "end_date": date(2026, 12, 31),
        "renewal_notice_days": 30,
    },
    "company": {"name": "天元贸易", "address": "上海市 浦东新区", "postal_code": "200120", "country": "CN"},
    "deal": {"name": "ERP 升级", "amount": Decimal("150000.00"), "currency": "CNY"},
    "line_items": [
        {
            "name": "ERP 标准版",
            "quantity": Decimal(3),
            "unit_price": Decimal("50000.00"),
            "discount_percent": Decimal(0),
            "amount": Decimal("150000.00"),
        }
    ],
}


def _templates(session: AsyncSession, principal: Principal) -> TenantRepository[ContractTemplate]:
    return TenantRepository(ContractTemplate, session, principal, label="contract template")


async def source(session: AsyncSession, principal: Principal, template_id: uuid.UUID | None) -> str:
    """The body of the template, or the built-in one when there is none."""
    if template_id is None:
        return DEFAULT_TEMPLATE
    return (await _templates(session, principal).get(template_id)).body


async def _check(body: str) -> None:
    """Tries the template on sample data: a syntax error or an unsafe expression is a 422 when
    the template is saved, not at its first render."""
    try:
        await render(body, SAMPLE_CONTEXT)
    except TemplateFailed as exc:
        raise ValidationFailed(FieldError(("body", "body"), str(exc))) from exc


async def create_template(
    session: AsyncSession, principal: Principal, *, data: ContractTemplateCreate
) -> ContractTemplate:
    await _check(data.body)
    template = ContractTemplate(organization_id=principal.organization_id, name=data.name, body=data.body)
    session.add(template)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=LABEL,
        entity_id=template.id,
        changes=audit.creation(audit.snapshot(template)),
    )
    return template


async def get_template(session: AsyncSession, principal: Principal, template_id: uuid.UUID) -> ContractTemplate:
    return await _templates(session, principal).get(template_id)


async def update_template(
    session: AsyncSession,
    principal: Principal,
    template_id: uuid.UUID,
    *,
    data: ContractTemplateUpdate,
    expected_version: int | None,
) -> ContractTemplate:
    template = await _templates(session, principal).locked(template_id, expected_version=expected_version)
    changes = data.changes()
    if "body" in changes:
        await _check(changes["body"])
    before = audit.snapshot(template)
    for name, value in changes.items():
        if getattr(template, name) != value:
            setattr(template, name, value)
    if delta := audit.diff(before, audit.snapshot(template)):
        await session.flush()
        audit.record(
            session, principal, action=AuditAction.update, entity_type=LABEL, entity_id=template.id, changes=delta
        )
    return template


async def find_templates(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> Page[ContractTemplate]:
    """Templates by name."""
    repository = _templates(session, principal)
    name = SortKey("name", ContractTemplate.__table__.c.name, ValueKind.text, nullable=False)
    return await repository.page(
        repository.scoped(), Keyset.of([name], ContractTemplate.id), cursor=cursor, limit=limit
    )
