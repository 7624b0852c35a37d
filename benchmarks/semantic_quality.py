"""Semantic cache quality: plain cosine thresholds against the adapter + the pair verifier.

    HF_HUB_OFFLINE=1 python benchmarks/semantic_quality.py [--out benchmarks/results]

Protocol (issue 6): the cache holds every question1 (GPTCache: every ``origin``); every
question2 (``similar``) is asked and gets its top-1 (and the runner-up's similarity) from an
exact search over all cached vectors. A duplicate served its own entry is a correct hit; a
non-duplicate served anything is a wrong hit; a duplicate served another entry counts in the
wrong-entry rate. "MiniLM" is all-MiniLM-L6-v2 as published; "ours" is the default semantic
tier: MiniLM with the question adapter (trained on one half of dev, scripts/train_embedder.py)
and the verifier (trained on the other half, scripts/train_verifier.py, which also chose its
default operating point). qqp_test and sts2016 are held out. Writes
semantic_quality.md and semantic_quality.png. Needs the dev and local-embeddings extras.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmcache.semantic.embedders import MiniLMEmbedder
from llmcache.semantic.training import data, protocol, trapset
from llmcache.semantic.verifier import PairVerifier

MAX_WRONG = 0.03
SETS = ("qqp_dev", "qqp_test", "gptcache", "sts2016")
HELD_OUT = {"qqp_test", "sts2016"}


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _row(label: str, rt: protocol.Rates, has_non: bool) -> str:
    wrong = _pct(rt.wrong) if has_non else "n/a"
    return f"| {label} | {_pct(rt.correct)} | {wrong} | {_pct(rt.wrong_entry)} |"


def _scores(
    r: protocol.Retrieval, verifier: PairVerifier, minilm: MiniLMEmbedder
) -> tuple[Any, float]:
    """The verifier's probability for each asked question's top-1 (0 when the direction
    checks or the similarity floor reject it, or when the tier would: the two questions'
    unread parts differ), and the mean cost of one decision in us."""
    out = np.zeros(len(r.pairs.asked))
    t0 = time.perf_counter()
    for i, (q, c, s1, s2) in enumerate(
        zip(r.pairs.asked, r.top_text, r.top_sim, r.second_sim, strict=True)
    ):
        if minilm.unread_parts(q) != minilm.unread_parts(c):
            continue
        out[i] = verifier.score(q, c, float(s1), float(s2) if s2 >= -0.5 else None)
    cost = (time.perf_counter() - t0) / max(len(out), 1) * 1e6
    return out, cost


def run(out_dir: Path) -> str:
    verifier = PairVerifier()
    minilm = MiniLMEmbedder()

    def reads(text: str) -> bool:
        return minilm.cannot_read(text) is None

    pre = verifier.model.min_similarity
    thr = verifier.threshold
    lines: list[str] = []
    curves: dict[str, tuple[Any, Any]] = {}
    costs: list[float] = []
    headline: dict[str, tuple[float, float, float]] = {}
    excl: dict[str, tuple[float, float]] = {}
    for name in SETS:
        pairs = data.load(name)
        base = protocol.retrieve(pairs, embedder="minilm-base")  # MiniLM as published
        adapted = protocol.retrieve(pairs)  # MiniLM with the question adapter, plain cosine
        # Ours: the same vectors, with the tier's rules for what MiniLM cannot read (a
        # question too long, or mostly in words it does not know, is neither indexed nor
        # searched; a candidate whose unread parts are not the question's is not served).
        r = protocol.retrieve(pairs, reads=reads)
        scores, cost = _scores(r, verifier, minilm)
        costs.append(cost)
        has_non = not all(pairs.duplicate)
        tag = " (held out)" if name in HELD_OUT else " (tuning)"
        lines += [
            f"### {name}{tag}: {len(pairs.asked)} pairs, {sum(pairs.duplicate)} duplicates",
            "",
            "| method | duplicates served their own entry | non-duplicates served a wrong "
            "answer | duplicates served another entry |",
            "|---|---|---|---|",
        ]
        for t in (0.80, 0.90):
            lines.append(
                _row(f"MiniLM, cosine >= {t:.2f}", protocol.rates(base, base.top_sim >= t), has_non)
            )
        if has_non:
            ct, plain_correct, rt = protocol.correct_at_wrong(base, base.top_sim, 0.0, MAX_WRONG)
            lines.append(
                _row(f"MiniLM, cosine >= {ct:.3f} (wrong hits held to 3% on this set)", rt, has_non)
            )
            at, adapted_correct, rt = protocol.correct_at_wrong(
                adapted, adapted.top_sim, 0.0, MAX_WRONG
            )
            lines.append(
                _row(f"MiniLM + adapter, cosine >= {at:.3f} (wrong hits held to 3%)", rt, has_non)
            )
        gate = r.top_sim >= pre
        lines.append(
            _row(
                f"ours: cosine >= {pre:.2f} + verifier p >= {thr:.3f} (default, chosen on dev)",
                protocol.rates(r, gate & (scores >= thr)),
                has_non,
            )
        )
        if has_non:
            vt, vc, rt = protocol.correct_at_wrong(r, scores, pre, MAX_WRONG)
            lines.append(
                _row(
                    f"ours: verifier p >= {vt:.3f} (wrong hits held to 3% on this set)", rt, has_non
                )
            )
            headline[name] = (plain_correct, adapted_correct, vc)
            # QQP asks some questions whose exact words are cached under another pair; the
            # protocol counts serving them as wrong when that pair is not a duplicate. An exact
            # tier answers them before any semantic search, so they are shown apart as well.
            same, same_base = protocol.identical_words(r), protocol.identical_words(base)
            rest = protocol.subset(r, ~same)
            keep = scores[~same]
            rest_base = protocol.subset(base, ~same_base)
            pc, _, prt = protocol.correct_at_wrong(rest_base, rest_base.top_sim, 0.0, MAX_WRONG)
            lines.append(
                _row(
                    f"without the {int(same_base.sum())} asked questions whose words are "
                    f"cached: MiniLM, cosine >= {pc:.3f} at 3% wrong",
                    prt,
                    has_non,
                )
            )
            oc, oc_rate, ort = protocol.correct_at_wrong(rest, keep, pre, MAX_WRONG)
            lines.append(
                _row(f"without them: ours, verifier p >= {oc:.3f} at 3% wrong", ort, has_non)
            )
            excl[name] = (prt.correct, oc_rate)
        lines.append("")
        grid = np.linspace(0.0, 1.0, 201)
        plain = protocol.sweep(base, base.top_sim, 0.0, list(np.linspace(0.6, 1.0, 161)))
        ours = protocol.sweep(r, scores, pre, list(grid))
        curves[name] = (plain, ours)

    items = trapset.build()
    trap_lines = _traps(items, verifier, pre, minilm)
    lines += trap_lines
    lines += [
        f"Verifier cost: {np.mean(costs):.0f} us per decision on average (pure Python, measured "
        "over every question of the four sets, on a 2-core machine shared with other jobs: "
        "numbers taken under load).",
        "",
    ]
    _plot(curves, out_dir / "semantic_quality.png")
    head = ["## Headline: duplicates served their own entry at <= 3% wrong hits", ""]
    head += [
        "| set | MiniLM, plain cosine | MiniLM + adapter, plain cosine | ours (adapter + "
        "verifier) | MiniLM, without identical-words questions | ours, without them |",
        "|---|---|---|---|---|---|",
    ]
    for name, (p, a, o) in headline.items():
        ep, eo = excl[name]
        held = " (held out)" if name in HELD_OUT else ""
        head.append(
            f"| {name}{held} | {_pct(p)} | {_pct(a)} | {_pct(o)} | {_pct(ep)} | {_pct(eo)} |"
        )
    return "\n".join([*head, "", *lines])


def _traps(
    items: list[Any], verifier: PairVerifier, pre: float, minilm: MiniLMEmbedder
) -> list[str]:
    def ours(q: str, c: str, s: float, r2: float | None) -> bool:
        """As the tier decides: both read by MiniLM, the same unread parts, the verifier."""
        return (
            s >= pre
            and minilm.cannot_read(q) is None
            and minilm.cannot_read(c) is None
            and minilm.unread_parts(q) == minilm.unread_parts(c)
            and verifier.verify(q, c, s, r2).accepted
        )

    def plain(q: str, c: str, s: float, r2: float | None) -> bool:
        return s >= 0.80

    res_ours = trapset.evaluate(items, ours)
    res_plain = trapset.evaluate(items, plain, embedder="minilm-base")
    lines = [
        "### Trap set (evaluation half of dev questions and GPTCache origins; antonyms disjoint "
        "from training's)",
        "",
        "| variant | n | MiniLM, plain cosine >= 0.80 | ours |",
        "|---|---|---|---|",
    ]
    for a, b in zip(res_plain, res_ours, strict=True):
        what = "served own entry" if a.kind.startswith("paraphrase") else "rejected"
        pa = a.served_rate if a.kind.startswith("paraphrase") else 1 - a.served_rate
        pb = b.served_rate if b.kind.startswith("paraphrase") else 1 - b.served_rate
        lines.append(f"| {a.kind} ({what}) | {a.n} | {_pct(pa)} | {_pct(pb)} |")
    rej_p, para_p = trapset.summary(res_plain)
    rej_o, para_o = trapset.summary(res_ours)
    lines += [
        f"| **all traps rejected** | | {_pct(rej_p)} | {_pct(rej_o)} |",
        f"| **all paraphrases served own entry** | | {_pct(para_p)} | {_pct(para_o)} |",
        "",
    ]
    return lines


def _plot(curves: dict[str, tuple[Any, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [n for n in curves if any(r.n_nondup for r in curves[n][0])]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4.2))
    for ax, name in zip(np.atleast_1d(axes), sets, strict=True):
        plain, ours = curves[name]
        ax.plot([r.wrong for r in plain], [r.correct for r in plain], label="MiniLM, plain cosine")
        ax.plot(
            [r.wrong for r in ours], [r.correct for r in ours], label="MiniLM + adapter + verifier"
        )
        ax.axvline(MAX_WRONG, color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0, 0.3)
        ax.set_ylim(0, 0.8)
        ax.set_title(name + (" (held out)" if name in HELD_OUT else ""))
        ax.set_xlabel("non-duplicates served a wrong answer")
        ax.set_ylabel("duplicates served their own entry")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    body = run(args.out)
    text = (
        "# Semantic cache quality (all-MiniLM-L6-v2)\n\n"
        "Command: `HF_HUB_OFFLINE=1 python benchmarks/semantic_quality.py`\n\n"
        + (__doc__ or "").split("\n\n", 2)[1]
        + "\n\n"
        + body
        + "\n![curves](semantic_quality.png)\n"
    )
    (args.out / "semantic_quality.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
