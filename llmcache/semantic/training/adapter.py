"""Train the MiniLM question adapter (``llmcache/semantic/adapter.py``) on one half of QQP dev.

The adapter is a rank-``r`` update ``B @ A`` beside every linear layer of MiniLM's six
transformer blocks (query, key, value, and both feed-forward layers); MiniLM's own weights stay
frozen. Two losses, summed per step:

- CoSENT over labelled pairs (duplicates and non-duplicates of the training half): every
  duplicate pair's cosine should rank above every non-duplicate's in the batch. QQP's
  non-duplicates are mostly near misses (same topic, another question), exactly what a cache
  must not serve.
- Multiple-negatives ranking over duplicate pairs: the asked question should be closer to its
  own duplicate than to the other questions of the batch, as a cache's top-1 must be.

Only dev is read; the other half of dev is left to the verifier (``dev_halves``), so the
verifier is trained on similarities the adapter was not fitted to.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcache.semantic.adapter import BASE_MODEL, FORMAT
from llmcache.semantic.training import data

#: Which linear layers of each BERT block get an adapter (paths below ``encoder.layer.<i>``).
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "intermediate.dense",
    "output.dense",
)


@dataclass(frozen=True)
class AdapterParams:
    rank: int = 8
    learning_rate: float = 5e-4
    epochs: int = 1
    batch_size: int = 32
    scale: float = 20.0  # cosine -> logit, for both losses (CoSENT's and MNRL's usual value)
    seed: int = 0


def _low_rank(base: Any, rank: int) -> Any:
    """``base(x) + x A^T B^T``; B starts at zero so training starts from MiniLM itself."""
    import torch

    class LowRank(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.lora_a = torch.nn.Parameter(torch.randn(rank, base.in_features) * 0.01)
            self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

        def forward(self, x: Any) -> Any:
            return self.base(x) + (x @ self.lora_a.T) @ self.lora_b.T

    return LowRank()


def _attach(transformer: Any, rank: int) -> dict[str, Any]:
    """Wrap every target layer; returns {module path: its low-rank wrapper}."""
    for p in transformer.parameters():
        p.requires_grad = False
    wrapped = {}
    for i, block in enumerate(transformer.encoder.layer):
        for target in TARGETS:
            *path, leaf = target.split(".")
            holder = block
            for part in path:
                holder = getattr(holder, part)
            wrapper = _low_rank(getattr(holder, leaf), rank)
            setattr(holder, leaf, wrapper)
            wrapped[f"encoder.layer.{i}.{target}"] = wrapper
    return wrapped


def _encoder(model: Any) -> Callable[[list[str]], Any]:
    """Mean-pooled, normalized vectors with gradients (as SentenceTransformer pools MiniLM)."""
    import torch

    tokenizer, transformer = model.tokenizer, model[0].auto_model
    max_length = model.get_max_seq_length() or 256

    def encode(texts: list[str]) -> Any:
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        hidden = transformer(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    return encode


def _cosent(cos: Any, label: Any, scale: float) -> Any:
    import torch

    # log(1 + sum over (duplicate i, non-duplicate j) of exp(scale * (cos_j - cos_i)))
    diff = scale * (cos[None, :] - cos[:, None])
    ranked = label[:, None] > label[None, :]
    return torch.logsumexp(torch.cat([torch.zeros(1), diff[ranked]]), 0)


def _ranking(asked: Any, cached: Any, scale: float) -> Any:
    import torch

    logits = scale * asked @ cached.T
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(asked)))


def train_adapter(
    pairs: data.PairSet, params: AdapterParams, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train on ``pairs`` (a half of dev); returns {tensor name: tensor} for ``write``."""
    import torch

    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)
    # A private copy: the loaded base model must stay as published for other embeddings.
    model = copy.deepcopy(data._model("minilm-base"))
    transformer = model[0].auto_model
    wrapped = _attach(transformer, params.rank)
    trainable = [p for w in wrapped.values() for p in (w.lora_a, w.lora_b)]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate)
    encode = _encoder(model)
    labelled = list(zip(pairs.cached, pairs.asked, pairs.duplicate, strict=True))
    duplicates = [(c, a) for c, a, d in labelled if d]
    bs = params.batch_size
    started = time.monotonic()
    transformer.train()
    for epoch in range(params.epochs):
        rng.shuffle(labelled)
        rng.shuffle(duplicates)
        steps = len(labelled) // bs
        for step in range(steps):
            batch = labelled[step * bs : (step + 1) * bs]
            cos = (encode([c for c, _, _ in batch]) * encode([a for _, a, _ in batch])).sum(-1)
            label = torch.tensor([d for _, _, d in batch], dtype=torch.float32)
            loss = _cosent(cos, label, params.scale)
            start = (step * bs) % max(len(duplicates) - bs, 1)
            dup = duplicates[start : start + bs]
            if len(dup) > 1:
                asked = encode([a for _, a in dup])
                cached = encode([c for c, _ in dup])
                loss = loss + _ranking(asked, cached, params.scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 50 == 0 or step == steps - 1:
                log(
                    f"epoch {epoch} step {step + 1}/{steps} loss {loss.item():.3f} "
                    f"({time.monotonic() - started:.0f} s)"
                )
    tensors = {}
    for name, w in wrapped.items():
        tensors[f"{name}.lora_a"] = w.lora_a.detach().contiguous().clone()
        tensors[f"{name}.lora_b"] = w.lora_b.detach().contiguous().clone()
    return tensors


def write(tensors: dict[str, Any], params: AdapterParams, meta: dict[str, str], path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    header = {
        "format": FORMAT,
        "base_model": BASE_MODEL,
        "rank": str(params.rank),
        "params": repr(params),
        **meta,
    }
    # Half precision on disk (0.6 MB instead of 1.2); B @ A is computed in float32 at load.
    save_file({k: v.to(torch.float16) for k, v in tensors.items()}, str(path), metadata=header)
