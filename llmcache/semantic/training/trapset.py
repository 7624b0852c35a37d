"""The trap set the tests and the benchmark measure: evaluation-half variants of dev and
GPTCache questions, plus GPTCache's own paraphrase pairs.

Protocol: the cache holds every original; every variant is asked and gets its top-1 among
them. A trap is rejected when it is not served at all; a paraphrase hits when it is served
its own original.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from llmcache.semantic.training import data, traps

REAL_PARAPHRASE = "paraphrase:gptcache"


@dataclass(frozen=True)
class TrapResult:
    kind: str
    n: int
    served_rate: float  # traps: served anything (want low); paraphrases: served own entry


def build(per_kind: int = 300, seed: int = 7) -> list[traps.Variant]:
    """Up to ``per_kind`` variants of each mechanism and as many GPTCache paraphrase pairs,
    all from the evaluation half (the model trains on the other half)."""
    dev = data.load("qqp_dev")
    gpt = data.load("gptcache")
    questions = sorted(set(dev.cached) | set(dev.asked) | set(gpt.cached))
    by_kind: dict[str, list[traps.Variant]] = {}
    for v in traps.variants(questions, "eval", seed=seed):
        by_kind.setdefault(v.kind, []).append(v)
    by_kind[REAL_PARAPHRASE] = [
        traps.Variant(o, s, REAL_PARAPHRASE, True)
        for o, s in zip(gpt.cached, gpt.asked, strict=True)
        if o != s and traps.half_of(o) == "eval"
    ]
    rng = random.Random(seed)
    out: list[traps.Variant] = []
    for _, vs in sorted(by_kind.items()):
        out.extend(rng.sample(vs, min(per_kind, len(vs))))
    return out


Decide = Callable[[str, str, float, float | None], bool]


def evaluate(
    items: list[traps.Variant], decide: Decide, embedder: str = data.DEFAULT_EMBEDDER
) -> list[TrapResult]:
    """Per mechanism: how often the pipeline ``decide(query, candidate, sim, runner_up)``
    serves the asked variant (for a paraphrase: serves its own original), on the similarities
    of ``embedder``."""
    import numpy as np

    pool = sorted({v.original for v in items})
    pool_vecs = data.embed(pool, embedder)
    asked = data.embed([v.text for v in items], embedder)
    sims = asked @ pool_vecs.T
    order = np.argsort(-sims, axis=1)[:, :2]
    counts: dict[str, list[int]] = {}
    for i, v in enumerate(items):
        top = int(order[i, 0])
        runner = float(sims[i, order[i, 1]]) if sims.shape[1] > 1 else None
        served = decide(v.text, pool[top], float(sims[i, top]), runner)
        hit = served and (not v.same or pool[top] == v.original)
        c = counts.setdefault(v.kind, [0, 0])
        c[0] += 1
        c[1] += int(hit)
    return [TrapResult(k, n, s / n) for k, (n, s) in sorted(counts.items())]


def summary(results: list[TrapResult]) -> tuple[float, float]:
    """(share of traps rejected, share of paraphrases served their own entry), pooled."""
    trap_n = sum(r.n for r in results if not r.kind.startswith("paraphrase"))
    trap_served = sum(r.n * r.served_rate for r in results if not r.kind.startswith("paraphrase"))
    para_n = sum(r.n for r in results if r.kind.startswith("paraphrase"))
    para_hit = sum(r.n * r.served_rate for r in results if r.kind.startswith("paraphrase"))
    return 1 - trap_served / max(trap_n, 1), para_hit / max(para_n, 1)
