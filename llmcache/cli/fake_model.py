"""``DemoChatModel``: a LangChain chat model that answers like a provider, without a provider.

It is a real ``BaseChatModel``, so LangChain's own cache path (``set_llm_cache``) runs exactly
as with a hosted model; only the network call is replaced by a sleep of a provider-like
latency, and each answer carries ``usage_metadata`` the way OpenAI's or Anthropic's do, so the
demo can count the tokens a cache hit saves.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

_SENTENCES = (
    "Open Settings, then Security, and follow the steps shown there.",
    "The change takes effect immediately for every member of your workspace.",
    "Owners and admins can do this; other roles need to ask one of them.",
    "If anything looks wrong, the audit log records who changed what and when.",
    "Our documentation has a step-by-step guide with screenshots.",
    "On the business plan our support team can also do it for you.",
    "This is free on every plan, including the trial.",
    "You will receive a confirmation email within a few minutes.",
)


def estimate_tokens(text: str) -> int:
    """About four characters per token, as OpenAI's rule of thumb for English text."""
    return max(1, len(text) // 4)


class DemoChatModel(BaseChatModel):
    """Answers after ``latency`` seconds on average (uniformly 0.4x to 1.6x: 20-80 ms at 50 ms).

    Every call is counted in ``calls``: a cache hit never reaches ``_generate``.
    """

    model_name: str = "demo-chat-1"
    temperature: float = 0.0
    latency: float = 0.05
    seed: int = 0
    _calls: int = PrivateAttr(default=0)
    _rng: random.Random = PrivateAttr(default_factory=random.Random)

    def model_post_init(self, context: Any) -> None:
        self._rng.seed(self.seed)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def _llm_type(self) -> str:
        return "llmcache-demo-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # Part of LangChain's llm_string, hence of the cache key (as a provider's params are).
        return {"model_name": self.model_name, "temperature": self.temperature}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls += 1
        time.sleep(self.latency * self._rng.uniform(0.4, 1.6))
        prompt = "\n".join(str(m.content) for m in messages)
        answer = _answer(str(messages[-1].content))
        message = AIMessage(
            content=answer,
            usage_metadata={
                "input_tokens": estimate_tokens(prompt),
                "output_tokens": estimate_tokens(answer),
                "total_tokens": estimate_tokens(prompt) + estimate_tokens(answer),
            },
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _answer(question: str) -> str:
    """A deterministic, plausible answer: the same question always gets the same text."""
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    picked = [_SENTENCES[b % len(_SENTENCES)] for b in digest[:3]]
    return f"Good question: {question.rstrip('?')}? " + " ".join(dict.fromkeys(picked))
