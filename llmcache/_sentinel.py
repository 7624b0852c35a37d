"""A marker for "argument not passed", distinct from None and from 0."""

from __future__ import annotations

import enum
from typing import Final, Literal


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "Not passed": use the configured default. ``None`` and ``0`` are real values.
UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]
