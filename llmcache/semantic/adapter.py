"""A low-rank adapter that tunes all-MiniLM-L6-v2 to tell one question from a close other one.

MiniLM was trained to place related sentences together; a cache needs more: "the same
question" close, "a different question on the same topic" further away. The adapter is a
rank-8 update ``B @ A`` of each linear layer in MiniLM's six transformer blocks (295k numbers
against MiniLM's 22M), trained on half of QQP's dev split by ``scripts/train_embedder.py``
(``llmcache.semantic.training.adapter``). It is merged into the weights when the model loads,
so embedding costs exactly what plain MiniLM costs.

The file is safetensors (tensors and a string header only: nothing is unpickled). Its tensors
are named ``<module path>.lora_a`` (rank x in) and ``<module path>.lora_b`` (out x rank); the
header names the base model and the rank. A missing, malformed or mismatched file raises
``AdapterError`` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

from llmcache.errors import LLMCacheError

FORMAT = "llmcache-lora"
BASE_MODEL = "all-MiniLM-L6-v2"
#: The adapter shipped with the package (the default embedder's).
DEFAULT_ADAPTER_FILE = "minilm_qqp_adapter.safetensors"


class AdapterError(LLMCacheError):
    """The embedder's adapter file is missing, malformed or does not fit the model."""


def default_adapter_path() -> Path:
    return Path(str(resources.files("llmcache.semantic").joinpath(DEFAULT_ADAPTER_FILE)))


def adapter_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: names the vectors an adapter makes (a
    retrained adapter makes other vectors under the same file name)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise AdapterError(f"embedder adapter {path}: cannot read it ({exc})") from exc


def merge_adapter(transformer: Any, path: Path) -> dict[str, str]:
    """Add each ``B @ A`` of the file at ``path`` to the weight of the module it names in
    ``transformer`` (a Hugging Face model, e.g. ``SentenceTransformer(...)[0].auto_model``).
    Returns the file's header. Checks everything before changing any weight."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            header = dict(fh.metadata() or {})
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except FileNotFoundError as exc:
        raise AdapterError(f"embedder adapter {path}: no such file") from exc
    except Exception as exc:  # safetensors raises its own error types for a bad file
        raise AdapterError(f"embedder adapter {path}: not a safetensors file ({exc})") from exc
    if header.get("format") != FORMAT or header.get("base_model") != BASE_MODEL:
        raise AdapterError(
            f"embedder adapter {path}: expected format {FORMAT!r} for {BASE_MODEL}, got "
            f"{header.get('format')!r} for {header.get('base_model')!r}"
        )
    modules = dict(transformer.named_modules())
    updates = []
    for name in sorted({key.rsplit(".", 1)[0] for key in tensors}):
        a, b = tensors.get(f"{name}.lora_a"), tensors.get(f"{name}.lora_b")
        weight = getattr(modules.get(name), "weight", None)
        if a is None or b is None or weight is None:
            raise AdapterError(
                f"embedder adapter {path}: {name!r} is incomplete or not in the model"
            )
        delta = b.float() @ a.float()
        if delta.shape != weight.shape:
            raise AdapterError(
                f"embedder adapter {path}: {name!r} has shape {tuple(delta.shape)}, the model's "
                f"weight {tuple(weight.shape)}"
            )
        updates.append((weight, delta))
    if not updates:
        raise AdapterError(f"embedder adapter {path}: holds no layers")
    import torch

    with torch.no_grad():
        for weight, delta in updates:
            weight += delta.to(weight.dtype)
    return header
