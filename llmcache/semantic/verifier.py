"""The verifier protocol: may a close candidate be served for this query?

A vector search finds the closest cached question; the verifier decides whether it asks the
same thing (a paraphrase) or only looks like it (a changed number, entity, negation or
argument order). Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable


class Verdict(NamedTuple):
    """A decision, its score (higher = more likely the same question) and, when rejected,
    a short machine-readable reason (for stats and the debug log)."""

    accepted: bool
    score: float
    reason: str | None = None


@runtime_checkable
class Verifier(Protocol):
    def verify(
        self, query: str, candidate: str, similarity: float, runner_up: float | None = None
    ) -> Verdict:
        """``similarity``: cosine of the query and the candidate; ``runner_up``: cosine of the
        second-best candidate in the partition, if any."""
        ...


class AcceptAll:
    """No verification: every candidate above the threshold is served (plain cosine)."""

    def verify(
        self, query: str, candidate: str, similarity: float, runner_up: float | None = None
    ) -> Verdict:
        return Verdict(True, similarity)


def default_verifier() -> Verifier:
    """The verifier a semantic tier uses unless told otherwise.

    Placeholder until the trained pair verifier lands: accepts everything above the threshold.
    """
    return AcceptAll()
