"""Warm-up: fill a cache before the traffic comes.

* ``read_faq`` + ``warm_faq``: store answers from a CSV or JSONL file of questions and
  answers, without calling a model, so the same question asked through LangChain or LiteLLM is
  an exact hit (and a paraphrase a semantic hit, with a semantic tier).
* ``read_log`` + ``replay_calls``: count a JSONL log of past calls and replay the most frequent
  ones through a model, through the cache, a few at a time.

The adapters provide the ``WarmupTarget``: ``langchain_llmcache.warmup.LangChainWarmup`` and
``litellm_llmcache.warmup.LiteLLMWarmup``. ``llmcache warmup`` is the command line.
"""

from llmcache.warmup.faq import FaqFile, FaqRow, read_faq
from llmcache.warmup.log import CallLog, LoggedCall, read_log
from llmcache.warmup.run import (
    DEFAULT_CONCURRENCY,
    FAQ_TAGS,
    FaqAnswer,
    WarmupReport,
    WarmupTarget,
    replay_calls,
    warm_faq,
)
from llmcache.warmup.source import MAX_ROW_BYTES, BadRow, WarmupFileError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FAQ_TAGS",
    "MAX_ROW_BYTES",
    "BadRow",
    "CallLog",
    "FaqAnswer",
    "FaqFile",
    "FaqRow",
    "LoggedCall",
    "WarmupFileError",
    "WarmupReport",
    "WarmupTarget",
    "read_faq",
    "read_log",
    "replay_calls",
    "warm_faq",
]
