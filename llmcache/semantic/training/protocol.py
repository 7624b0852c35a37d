"""The cache protocol of issue 6, on vectors: fill with one side, ask the other, score hits.

The cache holds every cached question (deduplicated: one entry per distinct text); every
asked question searches all of them (exact inner product on normalized vectors) and gets its
top-1 and the runner-up's similarity. A duplicate is served correctly when the top-1 is its
own cached question; a non-duplicate that is served anything is a wrong hit; a duplicate
served another entry counts in the wrong-entry rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmcache.semantic.training.data import DEFAULT_EMBEDDER, PairSet, embed, select
from llmcache.semantic.verifier import same_words


@dataclass(frozen=True)
class Retrieval:
    """Top-1 of each asked question: the entry's text, its similarity, the runner-up's."""

    pairs: PairSet
    top_text: list[str]
    top_sim: Any  # numpy float array
    second_sim: Any
    own: Any  # numpy bool array: top-1 is the pair's own cached question


def retrieve(
    pairs: PairSet,
    chunk: int = 2048,
    embedder: str = DEFAULT_EMBEDDER,
    reads: Callable[[str], bool] | None = None,
) -> Retrieval:
    """``reads``: as the semantic tier does with an embedder's ``cannot_read``, a cached
    question it does not read is not indexed, and an asked one is not searched (its top-1
    similarity is -2: never served)."""
    import numpy as np

    entries = sorted(set(pairs.cached))
    vec_entries = embed(entries, embedder)
    vec_asked = embed(pairs.asked, embedder)
    unindexed = np.zeros(len(entries), dtype=bool)
    if reads is not None:
        unindexed[:] = [not reads(t) for t in entries]
    top_idx = np.empty(len(pairs.asked), dtype=np.int64)
    top_sim = np.empty(len(pairs.asked), dtype=np.float32)
    second = np.full(len(pairs.asked), -1.0, dtype=np.float32)
    for start in range(0, len(pairs.asked), chunk):
        sims = vec_asked[start : start + chunk] @ vec_entries.T
        sims[:, unindexed] = -2.0  # below any cosine: never a candidate
        k = min(2, sims.shape[1])
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-vals, axis=1)
        part = np.take_along_axis(part, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        top_idx[start : start + chunk] = part[:, 0]
        top_sim[start : start + chunk] = vals[:, 0]
        if k > 1:
            second[start : start + chunk] = vals[:, 1]
    if reads is not None:
        unread = np.array([not reads(t) for t in pairs.asked], dtype=bool)
        top_sim[unread], second[unread] = -2.0, -1.0
    top_text = [entries[i] for i in top_idx]
    own = np.array([t == c for t, c in zip(top_text, pairs.cached, strict=True)])
    return Retrieval(pairs, top_text, top_sim, second, own)


def subset(r: Retrieval, keep: Any) -> Retrieval:
    """The same retrieval restricted to the asked questions where ``keep`` is true."""
    import numpy as np

    idx = np.flatnonzero(keep)
    return Retrieval(
        select(r.pairs, keep),
        [r.top_text[i] for i in idx],
        r.top_sim[idx],
        r.second_sim[idx],
        r.own[idx],
    )


def identical_words(r: Retrieval) -> Any:
    """Per asked question (numpy bool): its top-1 has the same words up to case and
    punctuation, which the verifier accepts by rule (``same_words``)."""
    import numpy as np

    return np.array(
        [same_words(q, t) for q, t in zip(r.pairs.asked, r.top_text, strict=True)], dtype=bool
    )


def join(*parts: Retrieval) -> Retrieval:
    """Several retrievals as one (each searched its own cache), to score them together."""
    import numpy as np

    pairs = PairSet(
        "+".join(r.pairs.name for r in parts),
        [c for r in parts for c in r.pairs.cached],
        [a for r in parts for a in r.pairs.asked],
        [d for r in parts for d in r.pairs.duplicate],
    )
    return Retrieval(
        pairs,
        [t for r in parts for t in r.top_text],
        np.concatenate([r.top_sim for r in parts]),
        np.concatenate([r.second_sim for r in parts]),
        np.concatenate([r.own for r in parts]),
    )


@dataclass(frozen=True)
class Rates:
    correct: float  # duplicates served their own entry
    wrong: float  # non-duplicates served anything
    wrong_entry: float  # duplicates served another entry
    n_dup: int
    n_nondup: int


def rates(r: Retrieval, served: Any) -> Rates:
    import numpy as np

    dup = np.asarray(r.pairs.duplicate, dtype=bool)
    served = np.asarray(served, dtype=bool)
    n_dup, n_non = int(dup.sum()), int((~dup).sum())
    return Rates(
        correct=float((served & dup & r.own).sum() / max(n_dup, 1)),
        wrong=float((served & ~dup).sum() / max(n_non, 1)),
        wrong_entry=float((served & dup & ~r.own).sum() / max(n_dup, 1)),
        n_dup=n_dup,
        n_nondup=n_non,
    )


def verifier_scores(r: Retrieval, score: Callable[[str, str, float, float | None], float]) -> Any:
    import numpy as np

    return np.array(
        [
            score(q, t, float(s1), float(s2) if s2 >= -0.5 else None)
            for q, t, s1, s2 in zip(r.pairs.asked, r.top_text, r.top_sim, r.second_sim, strict=True)
        ]
    )


def correct_at_wrong(
    r: Retrieval, scores: Any, pre: float, max_wrong: float
) -> tuple[float, float, Rates]:
    """Best correct-hit rate with wrong hits at most ``max_wrong``, over every threshold on
    ``scores`` (among candidates with similarity >= ``pre``): (threshold, correct, rates)."""
    import numpy as np

    dup = np.asarray(r.pairs.duplicate, dtype=bool)
    gate = np.flatnonzero(r.top_sim >= pre)
    order = gate[np.argsort(-scores[gate], kind="stable")]
    good = np.cumsum(dup[order] & r.own[order])
    bad = np.cumsum(~dup[order])
    # Only cut where the score changes: tied rows are served together or not at all.
    s = scores[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, dtype=bool)
    n_non = max(int((~dup).sum()), 1)
    ok = np.flatnonzero(last_of_tie & (bad / n_non <= max_wrong))
    if len(ok) == 0:
        return float("inf"), 0.0, rates(r, np.zeros(len(scores), dtype=bool))
    best = ok[np.argmax(good[ok])]
    thr = float(s[best])
    rt = rates(r, (r.top_sim >= pre) & (scores >= thr))
    return thr, rt.correct, rt


def sweep(r: Retrieval, scores: Any, pre: float, thresholds: Sequence[float]) -> list[Rates]:
    gate = r.top_sim >= pre
    return [rates(r, gate & (scores >= t)) for t in thresholds]
