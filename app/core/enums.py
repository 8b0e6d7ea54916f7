"""Domain vocabularies shared by models, schemas and services."""

from __future__ import annotations

from enum import StrEnum


class LifecycleStage(StrEnum):
    subscriber = "subscriber"
    lead = "lead"
    marketing_qualified_lead = "marketing_qualified_lead"
    sales_qualified_lead = "sales_qualified_lead"
    opportunity = "opportunity"
    customer = "customer"
    evangelist = "evangelist"
    other = "other"


class ContactSource(StrEnum):
    """The channel a record was collected through (DESIGN.md §1)."""

    manual = "manual"
    api = "api"
    web_form = "web_form"
    import_ = "import"
    integration = "integration"
    email = "email"
    phone = "phone"
    social = "social"
    event = "event"
    referral = "referral"
    other = "other"


class CompanySize(StrEnum):
    s1_10 = "1-10"
    s11_50 = "11-50"
    s51_200 = "51-200"
    s201_500 = "201-500"
    s501_1000 = "501-1000"
    s1001_5000 = "1001-5000"
    s5001_plus = "5001+"


class CustomFieldEntity(StrEnum):
    contact = "contact"
    company = "company"
    deal = "deal"


class CustomFieldType(StrEnum):
    text = "text"
    number = "number"
    date = "date"
    boolean = "boolean"
    select = "select"
    multi_select = "multi_select"
    # Encrypted at rest, never listed or exported, shown on single reads to admins, every read audited.
    secret = "secret"


class AuditAction(StrEnum):
    create = "create"
    update = "update"
    delete = "delete"
    restore = "restore"
    erase = "erase"
    merge = "merge"
    read = "read"


class DeliveryStatus(StrEnum):
    """A webhook delivery: waiting (first try or a retry), leased to a relay, or finished."""

    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    failed = "failed"


class StageKind(StrEnum):
    """What reaching a pipeline stage means for a deal: still open, won or lost (also the deal's status)."""

    open = "open"
    won = "won"
    lost = "lost"
