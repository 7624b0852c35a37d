"""Entry point of the ``llmcache`` command (``[project.scripts]`` in pyproject.toml).

Imports click and rich only through ``require``, so ``pip install llmcache`` without the
``cli`` extra gets one line naming the extra instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from llmcache._optional import require
from llmcache.errors import MissingExtraError


def main(argv: Sequence[str] | None = None) -> None:
    try:
        require("click", extra="cli", feature="the llmcache command")
        require("rich", extra="cli", feature="the llmcache command")
    except MissingExtraError as exc:
        sys.stderr.write(f"llmcache: error: {exc}\n")
        raise SystemExit(1) from None
    from llmcache.cli.app import cli

    cli.main(args=list(argv) if argv is not None else None, prog_name="llmcache")


if __name__ == "__main__":
    main()
