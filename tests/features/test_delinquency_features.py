"""The catalogue's traces of incipient delinquency, on hand-built histories with known answers.

A borrower who stops paying one account still gets its statements, each carrying the
arrears, weeks before anything is 90 days late; a thin-file person who stops paying the
phone bill likewise. These features must see that, point in time, and lean the right way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from config.feature_definitions import load_feature_definitions
from features.store import compute_features
from tests.features.feature_rows import AS_OF, ago, ev, lake


def statement(user: str, days_ago: float, amount: float, account: str = "loan") -> dict[str, Any]:
    """An installment statement issued ``days_ago`` days before D, due 15 days later."""
    when = ago(days_ago)
    return ev("installment_due", user, when, account_id=account, amount=amount, currency="CNY",
              due_date=when.date() + timedelta(days=15))


def repaid(user: str, days_ago: float, amount: float, account: str = "loan") -> dict[str, Any]:
    """The repayment of the statement issued ``days_ago + 10`` days before D, on time."""
    when = ago(days_ago)
    return ev("repayment", user, when, account_id=account, amount=amount, amount_due=amount,
              currency="CNY", due_date=when.date() + timedelta(days=5), paid_date=when.date())


def bill(user: str, days_ago: float, amount: float, category: str = "telecom") -> dict[str, Any]:
    when = ago(days_ago)
    return ev("bill", user, when, account_id=category, amount=amount, currency="CNY",
              biller_category=category, due_date=when.date() + timedelta(days=14))


def bill_paid(user: str, days_ago: float, amount: float, category: str = "telecom") -> dict[str, Any]:
    when = ago(days_ago)
    return ev("bill_payment", user, when, account_id=category, amount=amount, currency="CNY",
              biller_category=category, due_date=when.date() + timedelta(days=2),
              paid_date=when.date())


def vectors(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    frame = compute_features(lake(rows), as_of=AS_OF)
    return {row.pop("user_id"): row for row in frame.to_dicts()}


def monthly(days_ago: range, make: Any) -> list[dict[str, Any]]:
    return [make(day) for day in days_ago]


def test_statements_outrunning_repayments_show_before_anything_is_90_days_late() -> None:
    # Both borrowers owe 500 a month for a year; "stopped" missed the last two statements,
    # which the lender re-issued with the arrears added (1000, then 1500).
    history = range(365, 60, -30)  # statements 365 ... 65 days ago, each repaid 10 days later
    rows = [*monthly(history, lambda d: statement("paying", d, 500)),
            *monthly(history, lambda d: repaid("paying", d - 10, 500)),
            statement("paying", 45, 500), repaid("paying", 35, 500),
            statement("paying", 15, 500), repaid("paying", 5, 500),
            *monthly(history, lambda d: statement("stopped", d, 500)),
            *monthly(history, lambda d: repaid("stopped", d - 10, 500)),
            statement("stopped", 45, 1000), statement("stopped", 15, 1500)]
    values = vectors(rows)
    paying, stopped = values["paying"], values["stopped"]
    assert paying["repay_to_due_count_30d"] == 1.0
    assert paying["repaid_accounts_share_30d"] == 1.0
    assert paying["installment_jump_30d"] == 1.0
    assert stopped["repay_to_due_count_30d"] == 0.0
    assert stopped["repaid_accounts_share_30d"] == 0.0
    assert stopped["installment_jump_30d"] == 3.0
    assert stopped["repay_to_due_amount_90d"] < paying["repay_to_due_amount_90d"]
    assert stopped["days_since_repayment"] == pytest.approx(55)
    assert paying["days_since_repayment"] == pytest.approx(5)


def test_an_unpaid_phone_bill_shows_for_a_thin_file_person() -> None:
    history = range(200, 60, -30)  # phone bills 200 ... 80 days ago, each paid 10 days later
    rows = [*monthly(history, lambda d: bill("thin", d, 80)),
            *monthly(history, lambda d: bill_paid("thin", d - 10, 80)),
            bill("thin", 50, 160), bill("thin", 20, 240),
            bill("thin", 55, 1500, "rent"), bill_paid("thin", 45, 1500, "rent"),
            bill("thin", 25, 1500, "rent"), bill_paid("thin", 15, 1500, "rent")]
    values = vectors(rows)["thin"]
    assert values["telecom_paid_to_billed_90d"] == pytest.approx(1 / 3)
    assert values["rent_paid_to_billed_90d"] == 1.0
    assert values["bill_paid_to_billed_30d"] == pytest.approx(1 / 2)
    assert values["bill_jump_30d"] == pytest.approx(1500 / 1500)
    assert values["repay_to_due_count_30d"] is None  # no credit: missing, not "all repaid"


def test_events_after_the_as_of_date_are_never_counted() -> None:
    rows = [statement("u", 20, 500), repaid("u", 15, 500),
            statement("u", -5, 9000), repaid("u", -3, 9000)]
    values = vectors(rows)["u"]
    assert values["repay_to_due_count_30d"] == 1.0
    assert values["installment_jump_30d"] == 1.0


def test_contacts_overdrafts_and_recent_lateness_are_shares_of_contacts() -> None:
    def contact(user: str, other: str) -> dict[str, Any]:
        return ev("contact", user, ago(400), contact_user_id=other, contact_action="added",
                  relation="friend")

    def overdrawn(user: str, days_ago: float) -> dict[str, Any]:
        return ev("balance", user, ago(days_ago), amount=-250, currency="CNY")

    rows = [contact("me", "a"), contact("me", "b"), contact("me", "c"), contact("me", "d"),
            overdrawn("a", 100), overdrawn("b", 500), overdrawn("c", -1),
            bill("d", 40, 80), ev("bill_payment", "d", ago(10), account_id="telecom", amount=80,
                                  currency="CNY", biller_category="telecom",
                                  due_date=(ago(10) - timedelta(days=9)).date(),
                                  paid_date=ago(10).date())]
    values = vectors(rows)["me"]
    assert values["contacts_overdrawn_share_365d"] == pytest.approx(1 / 4)  # b too old, c future
    assert values["contacts_slow_payer_share_30d"] == pytest.approx(1 / 4)  # d paid 9 days late
    assert values["contacts_gambling_share_365d"] == 0.0


def test_paying_less_of_what_was_billed_can_never_raise_a_score() -> None:
    directions = load_feature_definitions().directions
    for name in ("repay_to_due_count_30d", "repay_to_due_amount_90d", "repaid_accounts_share_90d",
                 "bill_paid_to_billed_90d", "telecom_paid_to_billed_90d",
                 "rent_paid_to_billed_90d"):
        assert directions[name] == -1, name
    for name in ("installment_jump_30d", "bill_jump_30d", "late_payments_30d",
                 "contacts_slow_payer_share_30d", "balance_negative_count_365d"):
        assert directions[name] == 1, name
