from __future__ import annotations

from collections.abc import Iterator

import pytest

from scoring.prefetch import ahead


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(ahead(iter(range(100)), depth=2)) == list(range(100))
    assert list(ahead([])) == []


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("broken chunk")

    seen = []
    with pytest.raises(ValueError, match="broken chunk"):
        for item in ahead(failing()):
            seen.append(item)
    assert seen == [1]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        for item in range(10_000):
            produced.append(item)
            yield item

    items = ahead(endless(), depth=1)
    assert next(items) == 0
    items.close()  # joins the producer thread
    assert len(produced) <= 3


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1"):
        list(ahead([1], depth=0))
