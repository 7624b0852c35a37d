"""Lazy imports of optional dependencies, failing with the name of the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from llmcache.errors import MissingExtraError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise MissingExtraError naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, module.split(".")[0]) from exc
