"""A LangChain-shaped Embeddings for tests without a model: bag of hashed words."""

from __future__ import annotations


class WordEmbeddings:
    """A LangChain-shaped Embeddings (duck-typed): bag of hashed words, 16 dims."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            vector = [0.0] * 16
            for word in text.lower().split():
                vector[sum(map(ord, word)) % 16] += 1.0
            out.append(vector)
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
