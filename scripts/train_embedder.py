"""Train MiniLM's question adapter on one half of QQP dev; write llmcache/semantic/<adapter file>.

    HF_HUB_OFFLINE=1 python scripts/train_embedder.py [--out PATH] [--no-write]

Reads only qqp_dev_pairs.csv: trains on the adapter's half (``train.dev_halves``), then
reports plain cosine on the verifier's half (not trained on), with MiniLM as published and
with the adapter: duplicates served their own entry at <= 3% wrong hits. Retrain the verifier
afterwards (scripts/train_verifier.py): it learns from this adapter's similarities. About 10
minutes on 2 CPU cores. Needs the dev and local-embeddings extras.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from llmcache.semantic.adapter import default_adapter_path
from llmcache.semantic.training import adapter, data, protocol, train


def plain_cosine(pairs: data.PairSet, embedder: str) -> tuple[float, float]:
    """(correct-hit rate, cosine threshold) at <= 3% wrong hits with ``embedder``."""
    r = protocol.retrieve(pairs, embedder=embedder)
    threshold, correct, _ = protocol.correct_at_wrong(r, r.top_sim, 0.0, train.TARGET_WRONG)
    return correct, threshold


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_adapter_path())
    ap.add_argument("--no-write", action="store_true", help="train and report only")
    ap.add_argument("--rank", type=int, default=adapter.AdapterParams.rank)
    ap.add_argument("--lr", type=float, default=adapter.AdapterParams.learning_rate)
    ap.add_argument("--epochs", type=int, default=adapter.AdapterParams.epochs)
    args = ap.parse_args(argv)
    params = adapter.AdapterParams(rank=args.rank, learning_rate=args.lr, epochs=args.epochs)

    adapter_half, verifier_half = train.dev_halves(data.load("qqp_dev"))
    print(
        f"training on {len(adapter_half.asked)} dev pairs; reporting on {len(verifier_half.asked)}"
    )
    tensors = adapter.train_adapter(adapter_half, params)
    meta = {
        "trained_on": "qqp_dev_pairs.csv, the adapter's half (train.dev_halves)",
        "losses": "CoSENT over labelled pairs + multiple-negatives ranking over duplicates",
    }
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "adapter.safetensors"
        adapter.write(tensors, params, meta, trial)
        base = plain_cosine(verifier_half, "minilm-base")
        tuned = plain_cosine(verifier_half, str(trial))
        print(
            f"verifier's half of dev (not trained on), plain cosine at <= 3% wrong hits: "
            f"MiniLM {base[0]:.1%} (cos >= {base[1]:.3f}), with the adapter {tuned[0]:.1%} "
            f"(cos >= {tuned[1]:.3f})"
        )
        if not args.no_write:
            args.out.write_bytes(trial.read_bytes())
            print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
