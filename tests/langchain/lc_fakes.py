"""Fake LangChain models for the adapter tests: real BaseChatModel/BaseLLM subclasses.

They run LangChain's real cache paths (``_generate_with_cache``, ``get_prompts``); only the
provider call is scripted. Each counts its calls, so a test can see a hit (no call) from a miss.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

from llmcache import current_scope

Reply = Callable[[list[BaseMessage], dict[str, Any]], AIMessage]


def text_reply(text: str) -> Reply:
    return lambda messages, kwargs: AIMessage(content=text)


def scope_reply(messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
    """Answers with the user of the ambient llmcache scope: shows whose answer is served."""
    return AIMessage(content=f"for {current_scope().user}: {messages[-1].content}")


class ScriptedChat(BaseChatModel):
    """A chat model answering with ``reply(messages, kwargs)``; supports ``bind_tools``.

    ``model_name`` and ``temperature`` appear in the llm_string as a provider's would.
    """

    model_name: str = "scripted-1"
    temperature: float | None = None
    reply: Reply = text_reply("ok")
    _calls: int = PrivateAttr(default=0)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    def _result(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._calls += 1
        message = self.reply(messages, kwargs)
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish": "stop"})]
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages, kwargs)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)


class SerializableChat(ScriptedChat):
    """The same, but LangChain-serializable: its llm_string is ``json---repr``."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True


class CountingLLM(LLM):
    """A completion model (BaseLLM): its cache entries are plain ``Generation`` objects."""

    answers: tuple[str, ...] = ("first", "second", "third")
    _counter: Any = PrivateAttr(default_factory=itertools.count)
    _calls: int = PrivateAttr(default=0)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def _llm_type(self) -> str:
        return "counting-llm"

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        self._calls += 1
        return self.answers[next(self._counter) % len(self.answers)]
