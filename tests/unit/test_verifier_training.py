"""Training folds: rows linked by a shared text must never be split across folds."""

from __future__ import annotations

from llmcache.semantic.training.train import component_groups


def test_a_pair_and_its_reverse_share_a_group() -> None:
    g = component_groups([("a?", "b?"), ("b?", "a?"), ("c?", "d?")])
    assert g[0] == g[1]
    assert g[0] != g[2]


def test_texts_linked_through_other_rows_share_a_group() -> None:
    # a-b and c-b meet at b; c-e joins e; f-g stays apart whatever the row order.
    rows = [("a", "b"), ("f", "g"), ("c", "b"), ("c", "e")]
    g = component_groups(rows)
    assert g[0] == g[2] == g[3]
    assert g[1] != g[0]
    assert list(component_groups(rows[::-1])) == list(g[::-1])


def test_no_rows_no_groups() -> None:
    assert len(component_groups([])) == 0
