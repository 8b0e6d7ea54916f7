"""All tables, imported so that `Base.metadata` is complete (Alembic reads it)."""

from app.models.assignment import AssignmentRule
from app.models.audit import AuditEntry
from app.models.base import Base
from app.models.company import Company
from app.models.contact import Contact
from app.models.contract import Contract, ContractNumberCounter, ContractTemplate
from app.models.custom_field import CustomFieldDefinition
from app.models.data_import import DataImport, ImportIssue
from app.models.deal import Deal, DealContact, DealLineItem, DealStageVisit
from app.models.duplicate import DuplicateScan, ScannedPair
from app.models.event import Event, EventFanout, EventStream
from app.models.export import Export
from app.models.funnel import FunnelCohort, FunnelDealPath, FunnelStay
from app.models.idempotency import IdempotencyRecord
from app.models.lifecycle import LifecycleChange
from app.models.mail import MailMessage
from app.models.order import Order, OrderLineItem
from app.models.organization import (
    ApiKey,
    Organization,
    RefreshToken,
    Team,
    TeamMember,
    User,
)
from app.models.owner_load import OwnerLoad
from app.models.pipeline import Pipeline, PipelineStage
from app.models.product import Product
from app.models.scoring import ContactActivity, LeadScore, ScoringRule
from app.models.task import Task
from app.models.webhook import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "AssignmentRule",
    "AuditEntry",
    "Base",
    "Company",
    "Contact",
    "ContactActivity",
    "Contract",
    "ContractNumberCounter",
    "ContractTemplate",
    "CustomFieldDefinition",
    "DataImport",
    "Deal",
    "DealContact",
    "DealLineItem",
    "DealStageVisit",
    "DuplicateScan",
    "Event",
    "EventFanout",
    "EventStream",
    "Export",
    "FunnelCohort",
    "FunnelDealPath",
    "FunnelStay",
    "IdempotencyRecord",
    "ImportIssue",
    "LeadScore",
    "LifecycleChange",
    "MailMessage",
    "Order",
    "OrderLineItem",
    "Organization",
    "OwnerLoad",
    "Pipeline",
    "PipelineStage",
    "Product",
    "RefreshToken",
    "ScannedPair",
    "ScoringRule",
    "Task",
    "Team",
    "TeamMember",
    "User",
    "Webhook",
    "WebhookDelivery",
]
