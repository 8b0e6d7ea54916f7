"""Domain vocabularies shared by models, schemas and services."""

from __future__ import annotations

from enum import StrEnum


class LifecycleStage(StrEnum):
    """The brief's lifecycle (潜在客户、初次购买、重复购买、忠诚客户、流失客户), in order."""

    subscriber = "subscriber"
    lead = "lead"
    marketing_qualified = "marketing_qualified"
    sales_qualified = "sales_qualified"
    opportunity = "opportunity"
    customer = "customer"
    repeat_customer = "repeat_customer"
    loyal = "loyal"
    churned = "churned"


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


class MailStatus(StrEnum):
    """An outgoing e-mail: waiting (first try or a retry), leased to a sender, accepted by the SMTP
    server, or given up after the last attempt."""

    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class StageKind(StrEnum):
    """What reaching a pipeline stage means for a deal: still open, won or lost (also the deal's status)."""

    open = "open"
    won = "won"
    lost = "lost"


class TaskKind(StrEnum):
    """What a task asks of its assignee."""

    call = "call"
    email = "email"
    meeting = "meeting"
    todo = "todo"


class TaskStatus(StrEnum):
    open = "open"
    completed = "completed"
    cancelled = "cancelled"


class OrderStatus(StrEnum):
    """An order's life: draft → confirmed → fulfilled → paid, or cancelled before it ships."""

    draft = "draft"
    confirmed = "confirmed"
    fulfilled = "fulfilled"
    paid = "paid"
    cancelled = "cancelled"


class ContractStatus(StrEnum):
    """A contract's life: draft → sent → signed → active → expired, or terminated on the way."""

    draft = "draft"
    sent = "sent"
    signed = "signed"
    active = "active"
    expired = "expired"
    terminated = "terminated"


class ScoringRuleKind(StrEnum):
    """Fit: who the contact is (a filter over its fields). Behaviour: what it did (activities)."""

    fit = "fit"
    behaviour = "behaviour"


class ActivitySignal(StrEnum):
    """Behaviour a contact showed, as integrations report it (and interactions, once logged)."""

    interaction = "interaction"
    email_opened = "email_opened"
    email_clicked = "email_clicked"
    form_submitted = "form_submitted"


class AssignmentStrategy(StrEnum):
    fixed_user = "fixed_user"
    round_robin = "round_robin"
    # Fewest open leads (or open deals), ties broken by round-robin.
    least_loaded = "least_loaded"
    # A contact field's value → a user or a team (round-robin within it).
    territory = "territory"
