"""Train the pair verifier on the QQP dev split and write llmcache/semantic/verifier_model.json.

    HF_HUB_OFFLINE=1 python scripts/train_verifier.py [--out PATH] [--no-write]

Reads only qqp_dev_pairs.csv: the verifier's half of it (``train.dev_halves``; the other half
trained the embedder's adapter, scripts/train_embedder.py), with similarities from the default
embedder (MiniLM with that adapter), and synthetic variants of the training half of its
questions. Prints out-of-fold dev metrics, chooses the default operating point on them
(wrong hits on non-duplicates held to 3%), fits on all rows and exports the trees as JSON.
Needs the dev and local-embeddings extras; vectors are cached under /tmp.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from llmcache.semantic.training import data, protocol, train

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "llmcache" / "semantic" / "verifier_model.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-write", action="store_true", help="report dev metrics only")
    ap.add_argument("--synthetic-weight", type=float, default=train.Params.synthetic_weight)
    ap.add_argument("--max-iter", type=int, default=train.Params.max_iter)
    ap.add_argument("--leaves", type=int, default=train.Params.max_leaf_nodes)
    ap.add_argument(
        "--half-adapters",
        nargs=2,
        type=Path,
        metavar=("ON_ADAPTER_HALF", "ON_VERIFIER_HALF"),
        help="adapters trained on each half of dev (train_embedder.py --half adapter, then "
        "--half verifier): the verifier then learns from all of dev, each half's similarities "
        "coming from the adapter not trained on it",
    )
    args = ap.parse_args(argv)
    params = train.Params(
        synthetic_weight=args.synthetic_weight, max_iter=args.max_iter, max_leaf_nodes=args.leaves
    )

    adapter_half, verifier_half = train.dev_halves(data.load("qqp_dev"))
    if args.half_adapters:
        # Cross-fitting: each half's similarities come from the adapter not trained on it.
        on_adapter_half, on_verifier_half = (str(p) for p in args.half_adapters)
        parts = [(verifier_half, on_adapter_half), (adapter_half, on_verifier_half)]
    else:
        parts = [(verifier_half, data.DEFAULT_EMBEDDER)]
    fwd_parts, fwd_retrievals, rev_parts, syn_parts = [], [], [], []
    for half, embedder in parts:
        reverse = data.PairSet(f"{half.name}_reverse", half.asked, half.cached, half.duplicate)
        rows_, retrieval = train.retrieval_rows(half, embedder)
        fwd_parts.append(rows_)
        fwd_retrievals.append(retrieval)
        rev_parts.append(train.retrieval_rows(reverse, embedder)[0])
        syn_parts.append(train.synthetic_rows(half, params, embedder=embedder))
    fwd_rows, rev_rows = train.concat(*fwd_parts), train.concat(*rev_parts)
    syn_rows = train.concat(*syn_parts)
    gpt_rows = train.gptcache_rows()
    rows = train.concat(fwd_rows, rev_rows, gpt_rows, syn_rows)
    print(
        f"rows: dev {len(fwd_rows.y)} + reverse {len(rev_rows.y)} + gptcache {len(gpt_rows.y)}"
        f" + synthetic {len(syn_rows.y)}"
    )

    oof = train.oof_scores(rows, params)
    # Scores of every forward dev question as the verifier gives them (rules applied).
    fwd_scores, start = [], 0
    for part, r in zip(fwd_parts, fwd_retrievals, strict=True):
        fwd_scores.append(train.apply_rules(r, oof[start : start + len(part.y)]))
        start += len(part.y)
    fwd = protocol.join(*fwd_retrievals)
    thr, correct, rt = protocol.correct_at_wrong(
        fwd, np.concatenate(fwd_scores), train.MIN_SIMILARITY, train.TARGET_WRONG
    )
    plain = protocol.correct_at_wrong(fwd, fwd.top_sim, 0.0, train.TARGET_WRONG)
    print(f"dev (out of fold): plain cosine {plain[1]:.1%} at <=3% wrong (cos>={plain[0]:.3f})")
    print(
        f"dev (out of fold): verifier {correct:.1%} correct, {rt.wrong:.1%} wrong, "
        f"{rt.wrong_entry:.1%} wrong entry at p>={thr:.3f}"
    )
    syn_scores = oof[len(oof) - len(syn_rows.y) :]
    for kind in sorted(set(syn_rows.source)):
        mask = np.array([s == kind for s in syn_rows.source])
        print(f"  {kind:24s} n={mask.sum():5d} accepted {np.mean(syn_scores[mask] >= thr):.1%}")
    if args.no_write:
        return 0
    model = train.fit(rows, params)
    meta = {
        "trained_on": "qqp_dev_pairs.csv, the verifier's half (both directions; "
        "similarities of MiniLM with the shipped adapter), the training half of "
        "gptcache_mock_pairs.json, synthetic variants of the training half of dev questions",
        "params": {k: v for k, v in dataclasses.asdict(params).items()},
        "folds": "5, grouped by connected texts (a pair and its reverse share a fold)",
        "dev_out_of_fold": {
            "correct": round(correct, 4),
            "wrong": round(rt.wrong, 4),
            "wrong_entry": round(rt.wrong_entry, 4),
            "plain_cosine_correct_at_3pct": round(plain[1], 4),
        },
    }
    doc = train.export(model, thr, meta)
    # The exported trees must reproduce sklearn's probabilities.
    from llmcache.semantic.verifier_features import FEATURE_NAMES
    from llmcache.semantic.verifier_model import parse_model

    shipped = parse_model(doc, str(args.out), FEATURE_NAMES)
    ref = model.predict_proba(rows.x[:500])[:, 1]
    ours = np.array([shipped.probability(list(x)) for x in rows.x[:500]])
    assert np.allclose(ref, ours, atol=1e-6), float(np.abs(ref - ours).max())
    train.write(doc, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, {len(doc['trees'])} trees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
