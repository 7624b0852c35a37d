"""Train the pair model on the QQP dev split (+ synthetic variants of dev questions) and export it.

Rows are what the verifier sees in service: each asked question's top-1 cached question (and
the runner-up similarity), over the dev split searched both ways (cache question1, ask
question2; then the reverse). A row is positive when the pair is a duplicate and the top-1 is
its own question. Synthetic rows come from the training half of the dev questions only
(``traps.half_of``): traps are negatives, surface paraphrases positives. Held-out sets are
never read here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcache.semantic.training import data, protocol, traps
from llmcache.semantic.verifier_direction import direction_reason
from llmcache.semantic.verifier_features import FEATURE_NAMES, pair_features
from llmcache.semantic.verifier_model import FORMAT, FORMAT_VERSION

# Candidates below this cosine are not worth verifying: the semantic tier's threshold in front
# of the verifier is never lower, so the model need not learn that region.
MIN_SIMILARITY = 0.70
TARGET_WRONG = 0.03


@dataclass
class Params:
    max_iter: int = 150
    learning_rate: float = 0.08
    max_leaf_nodes: int = 8
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    synthetic_weight: float = 0.3  # chosen on the verifier half of dev (0.05-0.5 tried)
    paraphrase_weight: float = 1.0  # synthetic paraphrases: the traps' counterweight
    synthetic_per_kind: int = 800
    seed: int = 0
    monotonic: dict[str, int] = field(
        default_factory=lambda: {"cosine": 1, "margin": 1, "char3_jaccard": 1, "content_jaccard": 1}
    )


@dataclass
class Rows:
    x: Any
    y: Any
    w: Any
    group: Any  # rows linked by a shared text share a fold (``component_groups``)
    source: list[str]
    texts: list[tuple[str, str]] = field(default_factory=list)  # (query, candidate) per row


def _group(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def component_groups(texts: list[tuple[str, str]]) -> Any:
    """One group per connected set of texts: rows linked by a shared text (the same pair
    searched both ways, a question reused by several pairs) fall in the same fold. Grouping
    by the asked text alone let a pair's reverse sit in another fold, which flattered every
    model by about 1.5 points on dev (and a model that memorises pairs far more)."""
    import numpy as np

    parent: dict[str, str] = {}

    def root(t: str) -> str:
        parent.setdefault(t, t)
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for q, c in texts:
        a, b = root(q), root(c)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([_group(root(q)) for q, _ in texts], dtype=np.int64)


def dev_halves(dev: data.PairSet) -> tuple[data.PairSet, data.PairSet]:
    """QQP dev split in two by connected texts: (the embedder adapter's half, the verifier's
    half). The verifier learns from similarities the adapter was not fitted to, as it will
    meet them in service."""

    odd = component_groups(list(zip(dev.asked, dev.cached, strict=True))) % 2 == 1
    return (
        data.select(dev, odd, f"{dev.name}_adapter_half"),
        data.select(dev, ~odd, f"{dev.name}_verifier_half"),
    )


def judged(r: protocol.Retrieval) -> Any:
    """The asked questions whose top-1 the model judges (numpy bool): at or above the
    similarity floor, and not the same words (those are accepted by rule)."""
    return (r.top_sim >= MIN_SIMILARITY) & ~protocol.identical_words(r)


def retrieval_rows(
    pairs: data.PairSet, embedder: str = data.DEFAULT_EMBEDDER
) -> tuple[Rows, protocol.Retrieval]:
    import numpy as np

    r = protocol.retrieve(pairs, embedder=embedder)
    # Pairs with the same words (up to case and punctuation) never reach the model: the
    # verifier accepts them by rule (and an exact tier would answer the identical text). In
    # QQP they are mostly a protocol artefact: a question asked again under another pair,
    # labelled "not a duplicate" of that pair; training on them would teach the model to
    # reject identical questions.
    keep = np.flatnonzero(judged(r))
    dup = np.asarray(pairs.duplicate, dtype=bool)
    x = [
        pair_features(pairs.asked[i], r.top_text[i], float(r.top_sim[i]), float(r.second_sim[i]))
        for i in keep
    ]
    y = (dup & r.own)[keep]
    return (
        Rows(
            np.array(x, dtype=np.float64),
            y.astype(np.int64),
            np.ones(len(keep)),
            component_groups([(pairs.asked[i], r.top_text[i]) for i in keep]),
            [pairs.name] * len(keep),
            [(pairs.asked[i], r.top_text[i]) for i in keep],
        ),
        r,
    )


def synthetic_rows(
    dev: data.PairSet,
    params: Params,
    half: traps.Half = "train",
    embedder: str = data.DEFAULT_EMBEDDER,
) -> Rows:
    """Traps and paraphrases of dev questions of one half, as the verifier would see them: the
    cache holds the original, the variant is asked; the runner-up is the closest other dev
    question."""
    import random

    import numpy as np

    questions = sorted(set(dev.cached) | set(dev.asked))
    rng = random.Random(params.seed)
    by_kind: dict[str, list[traps.Variant]] = {}
    for v in traps.variants(questions, half, seed=params.seed):
        by_kind.setdefault(v.kind, []).append(v)
    chosen: list[traps.Variant] = []
    for kind, vs in sorted(by_kind.items()):
        n = params.synthetic_per_kind * (2 if kind == "paraphrase" else 1)
        chosen.extend(rng.sample(vs, min(n, len(vs))))
    pool = sorted(set(dev.cached))
    pool_vecs = data.embed(pool, embedder)
    pool_index = {t: i for i, t in enumerate(pool)}
    orig_vecs = data.embed([v.original for v in chosen], embedder)
    var_vecs = data.embed([v.text for v in chosen], embedder)
    cos = (orig_vecs * var_vecs).sum(axis=1)
    sims = var_vecs @ pool_vecs.T
    for row, v in enumerate(chosen):
        at = pool_index.get(v.original)
        if at is not None:
            sims[row, at] = -1.0  # the original is the top-1 here, not a competitor
    runner = sims.max(axis=1)
    x, y, src, texts = [], [], [], []
    for i, v in enumerate(chosen):
        if cos[i] < MIN_SIMILARITY:
            continue
        x.append(pair_features(v.text, v.original, float(cos[i]), float(runner[i])))
        y.append(int(v.same))
        src.append(f"synthetic:{v.kind}")
        texts.append((v.text, v.original))
    return Rows(
        np.array(x, dtype=np.float64),
        np.array(y, dtype=np.int64),
        np.array([params.paraphrase_weight if label else params.synthetic_weight for label in y]),
        component_groups(texts),
        src,
        texts,
    )


def gptcache_rows(embedder: str = data.DEFAULT_EMBEDDER) -> Rows:
    """GPTCache's paraphrase pairs (all duplicates) of the training half, searched both ways;
    the evaluation half is left to the trap set's real paraphrases."""
    gpt = data.load("gptcache")
    keep = [i for i, o in enumerate(gpt.cached) if traps.half_of(o) == "train"]
    cached = [gpt.cached[i] for i in keep]
    asked = [gpt.asked[i] for i in keep]
    fwd = data.PairSet("gptcache_train", cached, asked, [True] * len(keep))
    rev = data.PairSet("gptcache_train_reverse", asked, cached, [True] * len(keep))
    return concat(retrieval_rows(fwd, embedder)[0], retrieval_rows(rev, embedder)[0])


def concat(*parts: Rows) -> Rows:
    import numpy as np

    return Rows(
        np.vstack([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.w for p in parts]),
        # Regrouped over all parts: a synthetic variant's original is also a dev question.
        component_groups([t for p in parts for t in p.texts]),
        [s for p in parts for s in p.source],
        [t for p in parts for t in p.texts],
    )


def fit(rows: Rows, params: Params) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]

    mono = [params.monotonic.get(name, 0) for name in FEATURE_NAMES]
    model = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        monotonic_cst=mono,
        early_stopping=False,
        random_state=params.seed,
    )
    model.fit(rows.x, rows.y, sample_weight=rows.w)
    return model


def export(model: Any, threshold: float, meta: dict[str, Any]) -> dict[str, Any]:
    """The fitted trees as plain lists (sklearn's predictors hold shrunk leaf values)."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        trees.append(
            {
                "feature": [int(v) for v in nodes["feature_idx"]],
                "threshold": [float(v) for v in nodes["num_threshold"]],
                "left": [int(v) for v in nodes["left"]],
                "right": [int(v) for v in nodes["right"]],
                "value": [round(float(v), 8) for v in nodes["value"]],
                "is_leaf": [bool(v) for v in nodes["is_leaf"]],
            }
        )
    baseline = float(model._baseline_prediction.ravel()[0])
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "features": list(FEATURE_NAMES),
        "baseline": baseline,
        "threshold": threshold,
        "min_similarity": MIN_SIMILARITY,
        "trees": trees,
        "meta": meta,
    }


def oof_scores(rows: Rows, params: Params, folds: int = 5) -> Any:
    """Out-of-fold probabilities (rows sharing a text stay in one fold: ``Rows.group``)."""
    import numpy as np

    fold = rows.group % folds
    out = np.zeros(len(rows.y))
    for k in range(folds):
        test = fold == k
        model = fit(
            Rows(rows.x[~test], rows.y[~test], rows.w[~test], rows.group[~test], []), params
        )
        out[test] = model.predict_proba(rows.x[test])[:, 1]
    return out


def apply_rules(r: protocol.Retrieval, model_scores: Any) -> Any:
    """What ``PairVerifier.score`` returns, given the model's probabilities of the ``judged``
    rows (those ``retrieval_rows`` makes): 0 below the floor or when a direction check
    rejects, 1 for the same words, the model's probability otherwise."""
    import numpy as np

    out = np.zeros(len(r.pairs.asked))
    out[judged(r)] = model_scores
    above = r.top_sim >= MIN_SIMILARITY
    same = protocol.identical_words(r)
    for i, (q, t) in enumerate(zip(r.pairs.asked, r.top_text, strict=True)):
        if not above[i] or direction_reason(q, t) is not None:
            out[i] = 0.0
        elif same[i]:
            out[i] = 1.0
    return out


def write(doc: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
