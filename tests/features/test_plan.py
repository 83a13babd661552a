"""Definitions compile to an engine-neutral plan: shared aggregates, passes per kind set."""

from __future__ import annotations

from config.feature_definitions import load_feature_definitions
from features.plan import (
    DAYS_PER_MONTH,
    Diff,
    Ratio,
    Ref,
    Scale,
    compile_plan,
    referenced_keys,
)
from tests.features.feature_rows import definitions


def test_every_feature_becomes_one_output_in_catalogue_order() -> None:
    plan = compile_plan()
    assert plan.names == load_feature_definitions().names


def test_every_output_reads_only_aggregates_the_plan_computes() -> None:
    plan = compile_plan()
    computed = {a.key for a in plan.aggregates} | {c.key for c in plan.contacts}
    for output in plan.outputs:
        assert set(referenced_keys(output.expr)) <= computed, output.name


def test_a_share_and_a_count_over_the_same_rows_share_one_aggregate() -> None:
    plan = compile_plan(definitions(
        {"name": "n", "kinds": ["repayment"], "aggregation": "count", "windows": [90]},
        {"name": "s", "kinds": ["repayment"], "aggregation": "share", "windows": [90],
         "where": [{"column": "days_late", "op": "eq", "value": 0}]},
    ))
    count, share = (output.expr for output in plan.outputs)
    assert isinstance(share, Ratio) and isinstance(count, Ref)
    assert share.denominator == count
    assert len(plan.aggregates) == 2


def test_aggregates_are_grouped_into_one_pass_per_kind_set() -> None:
    plan = compile_plan(definitions(
        {"name": "a", "kinds": ["payment"], "aggregation": "count"},
        {"name": "b", "kinds": ["payment"], "aggregation": "sum", "column": "amount"},
        {"name": "c", "kinds": ["transfer", "payment"], "aggregation": "count"},
        {"name": "d", "kinds": ["*"], "aggregation": "days_since_first"},
    ))
    assert {kinds: len(group) for kinds, group in plan.passes.items()} == {
        ("payment",): 2, ("payment", "transfer"): 1, (): 1}


def test_trend_compares_the_window_with_the_one_before() -> None:
    plan = compile_plan(definitions(
        {"name": "t", "kinds": ["payment"], "aggregation": "trend", "of": "sum",
         "column": "amount", "windows": [90]}))
    expr = plan.outputs[0].expr
    assert isinstance(expr, Diff)
    last, before = (next(a for a in plan.aggregates if a.key == ref.key)
                    for ref in (expr.left, expr.right))  # type: ignore[union-attr]
    assert (last.window, last.lag) == (90, 0)
    assert (before.window, before.lag) == (90, 90)


def test_months_are_days_scaled_and_all_time_has_no_window() -> None:
    plan = compile_plan(definitions(
        {"name": "m", "kinds": ["repayment"], "aggregation": "days_since_last", "unit": "months"}))
    expr = plan.outputs[0].expr
    assert isinstance(expr, Scale) and expr.factor == 1 / DAYS_PER_MONTH
    assert plan.aggregates[0].window is None and plan.aggregates[0].op == "min_age"


def test_contact_features_add_the_flag_as_a_per_user_aggregate() -> None:
    plan = compile_plan(definitions(
        {"name": "c", "kinds": ["contact"], "aggregation": "contact_share", "windows": [365],
         "flag": {"kinds": ["default"]}}))
    (contact,) = plan.contacts
    assert contact.flag is not None and contact.flag in plan.aggregates
    assert contact.flag.window == 365 and contact.flag.op == "count"


def test_aggregate_keys_are_stable_across_compilations() -> None:
    first = [a.key for a in compile_plan().aggregates]
    assert first == [a.key for a in compile_plan().aggregates]
    assert len(set(first)) == len(first)
