"""The categories of the taxonomy: every enumerated column, spelled in exactly one place.

Imported through :mod:`features.events`; the simulator and the feature engine
use these members instead of repeating the strings.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """Kinds of event stored in the lake (a correction is stored as the kind it corrects)."""

    BILL = "bill"
    BILL_PAYMENT = "bill_payment"
    CREDIT_OPENED = "credit_opened"
    INSTALLMENT_DUE = "installment_due"
    REPAYMENT = "repayment"
    DEFAULT = "default"
    PAYMENT = "payment"
    TRANSFER = "transfer"
    BALANCE = "balance"
    AGREEMENT = "agreement"
    PROFILE = "profile"
    APP_ACTIVITY = "app_activity"
    CONTACT = "contact"


CORRECTION = "correction"
"""The input-only kind of a record that replaces (or voids) an earlier event of its source."""


class BillerCategory(StrEnum):
    UTILITY = "utility"
    TELECOM = "telecom"
    RENT = "rent"
    INSURANCE = "insurance"
    OTHER = "other"


class Product(StrEnum):
    CREDIT_CARD = "credit_card"
    PERSONAL_LOAN = "personal_loan"
    BNPL = "bnpl"
    AUTO_LOAN = "auto_loan"
    MORTGAGE = "mortgage"
    MICROLOAN = "microloan"


class DefaultReason(StrEnum):
    CHARGE_OFF = "charge_off"
    DPD90 = "dpd90"


class MerchantCategory(StrEnum):
    GROCERY = "grocery"
    DINING = "dining"
    TRANSPORT = "transport"
    TRAVEL = "travel"
    UTILITIES = "utilities"
    ENTERTAINMENT = "entertainment"
    HEALTH = "health"
    EDUCATION = "education"
    ELECTRONICS = "electronics"
    CLOTHING = "clothing"
    LUXURY = "luxury"
    GAMBLING = "gambling"
    OTHER = "other"


class Channel(StrEnum):
    ONLINE = "online"
    IN_STORE = "in_store"
    MOBILE = "mobile"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class AgreementType(StrEnum):
    RENTAL_DEPOSIT_FREE = "rental_deposit_free"
    PAY_LATER = "pay_later"
    DEVICE_RENTAL = "device_rental"
    OTHER = "other"


class Outcome(StrEnum):
    KEPT = "kept"
    BROKEN = "broken"


class Education(StrEnum):
    NONE = "none"
    SECONDARY = "secondary"
    VOCATIONAL = "vocational"
    BACHELOR = "bachelor"
    MASTER = "master"
    DOCTORATE = "doctorate"


class Occupation(StrEnum):
    EMPLOYEE = "employee"
    CIVIL_SERVANT = "civil_servant"
    SELF_EMPLOYED = "self_employed"
    STUDENT = "student"
    RETIRED = "retired"
    UNEMPLOYED = "unemployed"
    OTHER = "other"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class ContactAction(StrEnum):
    ADDED = "added"
    REMOVED = "removed"


class Relation(StrEnum):
    FAMILY = "family"
    FRIEND = "friend"
    COLLEAGUE = "colleague"
    OTHER = "other"


PROTECTED_COLUMNS: tuple[str, ...] = ("birth_year", "gender")
"""Kept only for fairness reports; never a model input."""
