"""Hand-built event records: one valid example per kind, and helpers to vary them."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "bill": {"amount": "88.20", "currency": "CNY", "biller_category": "utility",
             "due_date": "2024-03-15", "account_id": "elec-1"},
    "bill_payment": {"amount": "88.20", "currency": "CNY", "biller_category": "utility",
                     "due_date": "2024-03-15", "paid_date": "2024-03-19", "account_id": "elec-1"},
    "credit_opened": {"account_id": "loan-1", "product": "personal_loan",
                      "credit_limit": "20000.00", "currency": "CNY", "term_months": 12},
    "installment_due": {"account_id": "loan-1", "amount": "1750.00", "currency": "CNY",
                        "due_date": "2024-04-01"},
    "repayment": {"account_id": "loan-1", "amount": "1750.00", "amount_due": "1750.00",
                  "currency": "CNY", "due_date": "2024-04-01", "paid_date": "2024-03-30"},
    "default": {"account_id": "loan-1", "amount": "15000.00", "currency": "CNY",
                "default_reason": "dpd90"},
    "payment": {"amount": "35.50", "currency": "CNY", "merchant_category": "grocery",
                "channel": "mobile"},
    "transfer": {"direction": "in", "amount": "9000.00", "currency": "CNY",
                 "counterparty": "cp-8812"},
    "balance": {"amount": "-120.35", "currency": "CNY", "account_id": "wallet-1"},
    "agreement": {"agreement_type": "rental_deposit_free", "outcome": "kept",
                  "amount": "3000.00", "currency": "CNY"},
    "profile": {"identity_verified": True, "education": "bachelor", "occupation": "employee",
                "phone_since": "2015-06-01", "address_changed": False, "birth_year": 1990,
                "gender": "female"},
    "app_activity": {"sessions": 14, "active_minutes": 95},
    "contact": {"contact_user_id": "u-2", "contact_action": "added", "relation": "friend"},
}

SOURCES = {"bill": "grid", "bill_payment": "grid", "credit_opened": "lender",
           "installment_due": "lender", "repayment": "lender", "default": "lender",
           "payment": "wallet", "transfer": "wallet", "balance": "wallet",
           "agreement": "rentals", "profile": "kyc", "app_activity": "app", "contact": "app"}


def record(kind: str, /, **changes: Any) -> dict[str, Any]:
    """A valid record of ``kind``; keyword arguments replace (or, when None, remove) fields."""
    base: dict[str, Any] = {
        "source": SOURCES[kind], "event_id": "e-1", "user_id": "u-1", "kind": kind,
        "event_time": "2024-03-10T08:30:00+08:00", **EXAMPLES[kind],
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def correction(original: dict[str, Any], event_id: str, **changes: Any) -> dict[str, Any]:
    """A correction replacing ``original`` (same source), with ``changes`` to its payload."""
    fixed = {**original, **changes, "kind": "correction", "event_id": event_id,
             "corrects": original["event_id"], "corrected_kind": original["kind"]}
    return {name: value for name, value in fixed.items() if value is not None}


def void(original: dict[str, Any], event_id: str, **changes: Any) -> dict[str, Any]:
    """A correction retracting ``original``."""
    return {"source": original["source"], "event_id": event_id, "user_id": original["user_id"],
            "kind": "correction", "corrects": original["event_id"],
            "corrected_kind": original["kind"], "void": True,
            "event_time": original["event_time"], **changes}


def population(n: int, prefix: str = "e") -> list[dict[str, Any]]:
    """``n`` valid records cycling through every kind, with distinct ids."""
    kinds = list(EXAMPLES)
    return [record(kinds[i % len(kinds)], event_id=f"{prefix}{i}", user_id=f"u{i % 7}")
            for i in range(n)]
