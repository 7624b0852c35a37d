"""Meaningful symbols: two questions that differ by an operator, a comparison or a currency
are not served for each other, whatever the embedding and the word features say."""

from __future__ import annotations

import pytest

from llmcache.semantic.verifier import default_verifier, symbols_reason

DIFFERENT = [
    ("What does x += 1 do in Python?", "What does x -= 1 do in Python?"),
    ("Why is a == b true here?", "Why is a != b true here?"),
    ("How do I check if x > y in bash?", "How do I check if x < y in bash?"),
    ("Is $5 a good price for this?", "Is €5 a good price for this?"),
    ("What is 2^10 % 7?", "What is 2*10 % 7?"),
    ("How do I learn C++?", "How do I learn C?"),  # a name bearing a symbol, on one side
    ("Is C# better than Java?", "Is C++ better than Java?"),
    ("Email bob@example.com the report", "Email eve@example.com the report"),
]

SAME = [
    ("What is 5% of 200?", "How much is 5% of 200?"),
    ("Best laptops under ₹50,000?", "Which laptops under 50k are best?"),  # one side only
    ("Is C# hard to learn?", "Is learning C# hard?"),
    ("How do I learn Python?", "What is the best way to learn Python?"),  # none
    ("Is AT&T good?", "Is AT&T a good carrier?"),
    ("How do I learn C++?", "What is the best way to learn C++?"),
]


@pytest.mark.parametrize(("query", "candidate"), DIFFERENT)
def test_different_symbols_are_rejected(query: str, candidate: str) -> None:
    assert symbols_reason(query, candidate) == "symbols_differ"
    assert symbols_reason(candidate, query) == "symbols_differ"
    # Without the rule all but the e-mail pair were served (the same words, up to
    # punctuation, or a name read as "c"); the rule now says why.
    verdict = default_verifier().verify(query, candidate, 0.95)
    assert (verdict.accepted, verdict.reason) == (False, "symbols_differ")


@pytest.mark.parametrize(("query", "candidate"), SAME)
def test_the_same_symbols_or_symbols_on_one_side_pass(query: str, candidate: str) -> None:
    assert symbols_reason(query, candidate) is None
    assert symbols_reason(candidate, query) is None
