"""Zero-cost chat models for benchmarks: what remains is the cache's own cost."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ZeroCostChat(BaseChatModel):
    """Answers instantly with a small, realistic message (usage metadata included)."""

    model_name: str = "zero-cost-1"
    answer: str = "The capital of France is Paris. It has been the capital since 987."

    @property
    def _llm_type(self) -> str:
        return "zero-cost-chat"

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        message = AIMessage(
            content=self.answer,
            usage_metadata={"input_tokens": 24, "output_tokens": 17, "total_tokens": 41},
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages)
