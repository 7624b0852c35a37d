"""The exception tree of llmcache.

LLMCacheError                  root: catch this to catch anything llmcache raises
├── ConfigError                a URL, option or argument is wrong (raised at construction)
│   └── MissingExtraError      an optional dependency is not installed (names the extra)
├── TierError                  a tier's storage failed (never reaches a LangChain/LiteLLM call:
│                              the cache fails open and counts it)
├── SchemaVersionError         a store was written by a newer llmcache than this one
└── CodecError                 a value could not be encoded, or a stored value not decoded
    └── ExportFileError        a file given to import is not an llmcache export
"""

from __future__ import annotations


class LLMCacheError(Exception):
    """Root of every error llmcache raises."""


class ConfigError(LLMCacheError, ValueError):
    """A URL, option or argument is invalid; the message names it and the fix."""


class MissingExtraError(ConfigError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the '{module}' package, which is not installed; "
            f"install it with: pip install 'llmcache[{extra}]'"
        )
        self.extra = extra
        self.module = module


class TierError(LLMCacheError):
    """A tier's storage failed (connection lost, locked, full, ...)."""


class SchemaVersionError(LLMCacheError):
    """A store carries a schema newer than this package understands."""


class CodecError(LLMCacheError):
    """A value could not be encoded, or stored bytes could not be decoded."""


class ExportFileError(CodecError):
    """A file given to ``Cache.import_entries`` is not an export this llmcache reads."""
