"""A chat model for the warm-up tests that records every call it answers, across copies.

The warm-up replays through a copy of the app's model (``model_copy``, so the app's own model
is not changed); the record is a plain object the copies share, so a test sees every call
the model really made, and how many were in flight at once. ``make_model`` is what
``llmcache warmup --model warmup_fakes:make_model`` imports.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

#: How often an async answer yields to the loop before answering, so that calls beyond a
#: broken concurrency limit would get in meanwhile (a yield, not a wait on the clock).
YIELDS = 20
#: A held call gives up after this long (it fails, and so does the test; it never hangs).
HOLD_SECONDS = 10.0


class CallRecord:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.asked: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_on: set[str] = set()
        # Async calls wait until this many are in flight at once (0: no wait): a test of a
        # concurrency limit then sees it reached whatever each call's lookup costs.
        self.hold_until = 0
        self.all_in = asyncio.Event()


def answer_to(question: str) -> str:
    return f"model answer to {question}"


class RecordingChat(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = "recording-chat-1"
    record: CallRecord = Field(default_factory=CallRecord, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "recording-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _answer(self, messages: list[BaseMessage]) -> ChatResult:
        question = str(messages[-1].content)
        self.record.asked.append(question)
        if question in self.record.fail_on:
            raise RuntimeError(f"the provider refused {question!r} (api_key=sk-secret123)")
        message = AIMessage(
            content=answer_to(question),
            usage_metadata={"input_tokens": 7, "output_tokens": 5, "total_tokens": 12},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._answer(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        record = self.record
        record.in_flight += 1
        record.max_in_flight = max(record.max_in_flight, record.in_flight)
        try:
            if record.in_flight >= record.hold_until:
                record.all_in.set()
            else:
                await asyncio.wait_for(record.all_in.wait(), HOLD_SECONDS)
            for _ in range(YIELDS):
                await asyncio.sleep(0)
            return self._answer(messages)
        finally:
            record.in_flight -= 1


#: The record of every model ``make_model`` builds (the CLI tests reset it).
RECORD = CallRecord()


def make_model() -> RecordingChat:
    return RecordingChat(record=RECORD)
