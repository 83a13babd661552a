"""The signal taxonomy: every kind of event altcredit accepts, and the lake's flat schema.

This module is the one source of truth for what an event is. The pydantic
models validate single records (the API path); the vectorised file validator
in :mod:`features.validate` derives its rules from the same models'
field metadata, so both paths accept and refuse the same records. The
enums are imported by the simulator and the feature engine, so a category
is spelled in exactly one place.

Money is :class:`~decimal.Decimal` with at most two decimals and a currency
code; timestamps must carry a time zone and are normalised to UTC (a naive
timestamp is refused, never guessed).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)

from features.event_enums import CORRECTION as CORRECTION  # re-exported: one import site
from features.event_enums import PROTECTED_COLUMNS as PROTECTED_COLUMNS
from features.event_enums import (
    AgreementType,
    BillerCategory,
    Channel,
    ContactAction,
    DefaultReason,
    Direction,
    Education,
    Gender,
    Kind,
    MerchantCategory,
    Occupation,
    Outcome,
    Product,
    Relation,
)

# -- the flat lake schema ------------------------------------------------------

MONEY = pa.decimal128(18, 2)
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

COMMON_FIELDS: tuple[pa.Field, ...] = (
    pa.field("source", pa.string(), nullable=False),
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("event_time", UTC_TIMESTAMP, nullable=False),
    pa.field("reported_at", UTC_TIMESTAMP),
    pa.field("ingested_at", UTC_TIMESTAMP, nullable=False),
    pa.field("known_at", UTC_TIMESTAMP, nullable=False),
    pa.field("corrects", pa.string()),
    pa.field("voided", pa.bool_()),
)

PAYLOAD_FIELDS: tuple[pa.Field, ...] = (
    pa.field("amount", MONEY),
    pa.field("currency", pa.string()),
    pa.field("account_id", pa.string()),
    pa.field("due_date", pa.date32()),
    pa.field("paid_date", pa.date32()),
    pa.field("days_late", pa.int32()),
    pa.field("amount_due", MONEY),
    pa.field("credit_limit", MONEY),
    pa.field("term_months", pa.int32()),
    pa.field("product", pa.string()),
    pa.field("default_reason", pa.string()),
    pa.field("biller_category", pa.string()),
    pa.field("merchant_category", pa.string()),
    pa.field("channel", pa.string()),
    pa.field("direction", pa.string()),
    pa.field("counterparty", pa.string()),
    pa.field("agreement_type", pa.string()),
    pa.field("outcome", pa.string()),
    pa.field("identity_verified", pa.bool_()),
    pa.field("education", pa.string()),
    pa.field("occupation", pa.string()),
    pa.field("phone_since", pa.date32()),
    pa.field("address_changed", pa.bool_()),
    pa.field("birth_year", pa.int32()),
    pa.field("gender", pa.string()),
    pa.field("sessions", pa.int32()),
    pa.field("active_minutes", pa.int32()),
    pa.field("contact_user_id", pa.string()),
    pa.field("contact_action", pa.string()),
    pa.field("relation", pa.string()),
)

LAKE_SCHEMA = pa.schema([*COMMON_FIELDS, *PAYLOAD_FIELDS])
"""One row per event in the lake: the contract between ingestion, simulator and feature engine."""


def empty_lake_table() -> pa.Table:
    """The lake's columns and no rows: made from no batches, as ``Schema.empty_table()``
    imports pandas (a seventh of a second, holding the GIL, in the middle of a build)."""
    return pa.Table.from_batches([], schema=LAKE_SCHEMA)

PLATFORM_COLUMNS: tuple[str, ...] = ("ingested_at", "known_at", "days_late")
"""Columns the platform adds; an input file may not carry them."""

INPUT_SCHEMA = pa.schema(
    [field for field in LAKE_SCHEMA if field.name not in (*PLATFORM_COLUMNS, "voided")]
    + [pa.field("corrected_kind", pa.string()), pa.field("void", pa.bool_())]
)
"""Columns of an input file or record: the lake's minus the platform's, with a correction's
``corrected_kind`` and ``void`` in place of the lake's ``voided``."""

PAYLOAD_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in PAYLOAD_FIELDS if field.name != "days_late"
)
"""Payload columns a furnisher may send (``days_late`` is derived, never taken)."""

# -- field types ---------------------------------------------------------------


UtcDatetime = AwareDatetime
"""Any time zone is accepted; Arrow stores the instant in UTC. Naive timestamps are refused."""
Text = Annotated[str, Field(min_length=1, max_length=256)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
SignedMoney = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
Count = Annotated[StrictInt, Field(ge=0, le=2_147_483_647)]
Months = Annotated[StrictInt, Field(ge=1, le=1200)]
BirthYear = Annotated[StrictInt, Field(ge=1900, le=2100)]


class _Event(BaseModel):
    """Fields every event has. Unknown fields are refused, not dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    source: Text
    event_id: Text
    user_id: Text
    event_time: UtcDatetime
    reported_at: UtcDatetime | None = None


class Bill(_Event):
    kind: Literal["bill"]
    amount: Money
    currency: Currency
    biller_category: BillerCategory
    due_date: date
    account_id: Text


class BillPayment(_Event):
    kind: Literal["bill_payment"]
    amount: Money
    currency: Currency
    biller_category: BillerCategory
    due_date: date
    paid_date: date
    account_id: Text


class CreditOpened(_Event):
    kind: Literal["credit_opened"]
    account_id: Text
    product: Product
    credit_limit: Money
    currency: Currency
    term_months: Months | None = None


class InstallmentDue(_Event):
    kind: Literal["installment_due"]
    account_id: Text
    amount: Money
    currency: Currency
    due_date: date


class Repayment(_Event):
    kind: Literal["repayment"]
    account_id: Text
    amount: Money
    amount_due: Money
    currency: Currency
    due_date: date
    paid_date: date


class Default(_Event):
    kind: Literal["default"]
    account_id: Text
    amount: Money
    currency: Currency
    default_reason: DefaultReason


class Payment(_Event):
    kind: Literal["payment"]
    amount: Money
    currency: Currency
    merchant_category: MerchantCategory
    channel: Channel


class Transfer(_Event):
    kind: Literal["transfer"]
    direction: Direction
    amount: Money
    currency: Currency
    counterparty: Text


class Balance(_Event):
    kind: Literal["balance"]
    amount: SignedMoney
    currency: Currency
    account_id: Text | None = None


class Agreement(_Event):
    kind: Literal["agreement"]
    agreement_type: AgreementType
    outcome: Outcome
    amount: Money
    currency: Currency


class Profile(_Event):
    """Identity and circumstances; ``birth_year`` and ``gender`` are protected (fairness only)."""

    kind: Literal["profile"]
    identity_verified: StrictBool | None = None
    education: Education | None = None
    occupation: Occupation | None = None
    phone_since: date | None = None
    address_changed: StrictBool | None = None
    birth_year: BirthYear | None = None
    gender: Gender | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Profile:
        if all(getattr(self, name) is None for name in PROFILE_ANY_OF):
            raise ValueError(PROFILE_EMPTY_REASON)
        return self


class AppActivity(_Event):
    kind: Literal["app_activity"]
    sessions: Count
    active_minutes: Count | None = None


class Contact(_Event):
    kind: Literal["contact"]
    contact_user_id: Text
    contact_action: ContactAction
    relation: Relation


PROFILE_ANY_OF: tuple[str, ...] = (
    "identity_verified", "education", "occupation", "phone_since",
    "address_changed", "birth_year", "gender",
)
PROFILE_EMPTY_REASON = "a profile event needs at least one of " + ", ".join(PROFILE_ANY_OF)

KIND_MODELS: dict[str, type[_Event]] = {
    Kind.BILL: Bill,
    Kind.BILL_PAYMENT: BillPayment,
    Kind.CREDIT_OPENED: CreditOpened,
    Kind.INSTALLMENT_DUE: InstallmentDue,
    Kind.REPAYMENT: Repayment,
    Kind.DEFAULT: Default,
    Kind.PAYMENT: Payment,
    Kind.TRANSFER: Transfer,
    Kind.BALANCE: Balance,
    Kind.AGREEMENT: Agreement,
    Kind.PROFILE: Profile,
    Kind.APP_ACTIVITY: AppActivity,
    Kind.CONTACT: Contact,
}
"""The model of each stored kind; the vectorised validator reads its rules from these."""

COMMON_INPUT_COLUMNS: tuple[str, ...] = (*_Event.model_fields, "kind")


def payload_fields(kind: str) -> dict[str, bool]:
    """Payload column -> required, for one stored kind (every other payload column must be null)."""
    model = KIND_MODELS[kind]
    return {
        name: info.is_required()
        for name, info in model.model_fields.items()
        if name in PAYLOAD_COLUMNS
    }


class Correction(_Event):
    """Replaces the event ``corrects`` of the same source, or retracts it when ``void`` is true.

    A replacement carries the full payload of ``corrected_kind`` and is validated
    as that kind by :func:`parse_record`; a void carries no payload. In the lake
    the row is stored as the corrected kind with ``corrects`` and ``voided`` set.
    """

    model_config = ConfigDict(extra="allow", frozen=True, use_enum_values=True)

    kind: Literal["correction"]
    corrects: Text
    corrected_kind: Kind
    void: StrictBool = False

    @model_validator(mode="after")
    def _payload_names_known(self) -> Correction:
        payload = self.model_extra or {}
        unknown = sorted(set(payload) - set(PAYLOAD_COLUMNS))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]}")
        present = sorted(name for name, value in payload.items() if value is not None)
        if self.void and present:
            raise ValueError(f"{VOID_WITH_PAYLOAD_REASON}, got {present[0]}")
        return self


VOID_WITH_PAYLOAD_REASON = "a void correction carries no payload"

DISPUTE_PREFIX = "altcredit-dispute-"
"""Event ids of the platform's own corrections (a dispute's void and restore) start with this."""

RESERVED_ID_COLUMNS: tuple[str, ...] = ("event_id", "corrects")
"""Columns in which a furnisher may not use :data:`DISPUTE_PREFIX`: its own ids, and a
correction's target (which would rewrite or undo a dispute's correction)."""

RESERVED_ID_REASON = f"must not start with {DISPUTE_PREFIX} (reserved for the platform's disputes)"


InputEvent = Annotated[
    Bill | BillPayment | CreditOpened | InstallmentDue | Repayment | Default | Payment
    | Transfer | Balance | Agreement | Profile | AppActivity | Contact | Correction,
    Field(discriminator="kind"),
]
"""One input record: any stored kind, or a correction."""

INPUT_EVENTS: TypeAdapter[list[InputEvent]] = TypeAdapter(list[InputEvent])
INPUT_EVENT: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)


def days_late(due: date, paid: date) -> int:
    """Days between due and paid date, never negative: the only definition of lateness."""
    return max(0, (paid - due).days)


def known_at(reported_at: datetime | None, ingested_at: datetime) -> datetime:
    """When the platform counts an event as known: its report time, never after ingestion."""
    if reported_at is None:
        return ingested_at
    return min(reported_at, ingested_at)

