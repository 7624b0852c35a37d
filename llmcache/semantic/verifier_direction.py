"""Deterministic, order-sensitive checks: the arguments of an asymmetric relation were swapped.

Sentence embeddings (and a model trained on QQP, whose labels treat "A vs B" and "B vs A" as
the same question) barely see direction: "convert Python 2 code to 3" and "convert Python 3
code to 2" are near-identical vectors. These checks split both texts at an asymmetric marker
("than", "to", "into", "over", "before", "after") and reject when content words crossed sides
in both directions. Symmetric constructions ("A vs B", "between A and B", "A or B") are left
alone on purpose. Pure string work: no model, no I/O.
"""

from __future__ import annotations

from llmcache.semantic.verifier_features import STOPWORDS, SYMMETRIC_MARKERS, Parsed, parse

# First occurrence is the relation's pivot, except "to", where the last one is (the first is
# often "how to ...").
ASYMMETRIC_MARKERS: tuple[str, ...] = ("than", "into", "over", "before", "after", "to")
# Pairs of markers that state the same relation with the sides exchanged ("A before B" is
# "B after A"): a pair using one on each side is compared with the candidate's sides flipped.
CONVERSE_MARKERS: dict[str, str] = {"before": "after", "after": "before"}


def _split(words: tuple[str, ...], marker: str) -> tuple[frozenset[str], frozenset[str]] | None:
    if marker not in words:
        return None
    idx = len(words) - 1 - words[::-1].index(marker) if marker == "to" else words.index(marker)
    left = frozenset(w for w in words[:idx] if w not in STOPWORDS)
    right = frozenset(w for w in words[idx + 1 :] if w not in STOPWORDS)
    return left, right


def _crossed(
    q: tuple[frozenset[str], frozenset[str]], c: tuple[frozenset[str], frozenset[str]]
) -> bool:
    """Words moved from left to right and others from right to left."""
    return bool(q[0] & c[1]) and bool(q[1] & c[0])


def _kept(
    q: tuple[frozenset[str], frozenset[str]], c: tuple[frozenset[str], frozenset[str]]
) -> bool:
    """Each side shares words with the same side of the other text."""
    return bool(q[0] & c[0]) and bool(q[1] & c[1])


def direction_reason(query: str, candidate: str) -> str | None:
    """Why the two texts state a relation in opposite directions, or None if they do not.

    Reasons are short stable identifiers (counted in stats): ``direction_swapped:<marker>``,
    ``direction_reversed:before/after`` (one says "before" where the other says "after",
    same sides) and ``words_swapped`` (two content words exchanged)."""
    q, c = parse(query), parse(candidate)
    for marker in ASYMMETRIC_MARKERS:
        qs, cs = _split(q.lower, marker), _split(c.lower, marker)
        if qs is not None and cs is not None and _crossed(qs, cs) and not _kept(qs, cs):
            return f"direction_swapped:{marker}"
    for marker, converse in CONVERSE_MARKERS.items():
        qs, cs = _split(q.lower, marker), _split(c.lower, converse)
        if qs is None or cs is None or _split(c.lower, marker) is not None:
            continue
        if _kept(qs, cs) and not _crossed(qs, cs):
            return f"direction_reversed:{marker}/{converse}"
    return _reordered_reason(q, c)


def _reordered_reason(q: Parsed, c: Parsed) -> str | None:
    # Two content words exchanged and nothing else changed ("Why do cats chase dogs?" vs "Why
    # do dogs chase cats?"), with no symmetric construction that makes the order irrelevant.
    # Looser reorderings are left to the model: paraphrases move whole phrases around.
    if len(q.lower) != len(c.lower) or q.lower == c.lower:
        return None
    moved = [i for i, (a, b) in enumerate(zip(q.lower, c.lower, strict=True)) if a != b]
    if len(moved) < 2 or sorted(q.lower[i] for i in moved) != sorted(c.lower[i] for i in moved):
        return None
    if any(q.lower[i] in STOPWORDS for i in moved):
        return None
    if (frozenset(q.lower) | frozenset(c.lower)) & SYMMETRIC_MARKERS:
        return None
    return "words_swapped"
