"""Fake chat models: real BaseChatModel ``_generate``/``_stream``/``_astream``, scripted replies.

``StreamingChat`` streams the text word by word and tool calls as ``tool_call_chunks`` (split
arguments), as provider integrations do; ``ScriptedChat`` cannot stream (``_generate`` only);
``JsonSchemaChat`` does structured output through a JSON-schema ``response_format``, as
ChatOpenAI does by default. Each counts its calls, so a test can tell a hit from a miss.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, PrivateAttr

Reply = Callable[[list[BaseMessage]], AIMessage]


class ScriptedChat(BaseChatModel):
    """Answers ``reply(messages)`` in one piece: no ``_stream``, as some integrations."""

    model_name: str = "streaming-1"
    reply: Reply = lambda messages: AIMessage(content="hello there friend")
    _calls: int = PrivateAttr(default=0)
    _sent: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The keyword arguments of each call (what would go to the provider)."""
        return self._sent

    @property
    def _llm_type(self) -> str:
        return "streaming-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        self._calls += 1
        self._sent.append(kwargs)
        return self.reply(messages)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, **kwargs)


class StreamingChat(ScriptedChat):
    """Streams ``reply(messages)``; ``fail_after`` chunks raises mid-stream (a dropped call)."""

    fail_after: int | None = None

    def _chunks(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> Iterator[ChatGenerationChunk]:
        message = self._answer(messages, kwargs)
        words = str(message.content).split(" ")
        pieces = [w + " " for w in words[:-1]] + [words[-1]]
        for produced, piece in enumerate(pieces):
            if self.fail_after is not None and produced >= self.fail_after:
                raise ConnectionError("the provider dropped the stream")
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        for index, call in enumerate(message.tool_calls):
            args = json.dumps(call["args"])
            half = len(args) // 2
            for part_no, part in enumerate((args[:half], args[half:])):
                yield ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="",
                        tool_call_chunks=[
                            tool_call_chunk(
                                name=call["name"] if part_no == 0 else None,
                                args=part,
                                id=call["id"] if part_no == 0 else None,
                                index=index,
                            )
                        ],
                    )
                )
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
                response_metadata={"finish_reason": "stop"},
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(messages, kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, kwargs):
            yield chunk


class JsonSchemaChat(ScriptedChat):
    """Structured output through a JSON-schema ``response_format`` (ChatOpenAI's default), not
    through tool calling; its reply is the JSON text ``reply`` gives."""

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        assert method == "json_schema" and isinstance(schema, type)
        assert issubclass(schema, BaseModel)
        llm = self.bind(response_format={"type": "json_schema", "schema": schema.__name__})
        parser = PydanticOutputParser(pydantic_object=schema)
        if include_raw:
            return RunnableMap(raw=llm) | RunnablePassthrough.assign(
                parsed=lambda answer: parser.invoke(answer["raw"])
            )
        return llm | parser


class CountingLimiter(BaseRateLimiter):
    """A rate limiter that never waits and counts how often it was asked."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True


class CountingHandler(BaseCallbackHandler):
    """Counts the LLM runs that ended."""

    def __init__(self) -> None:
        self.ended = 0

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self.ended += 1
