"""The demo's workload: who asks what, in which order. Pure: no LLM, no cache, no clock.

Real assistant traffic is skewed: a few questions ("how do I reset my password?") come back
all day while most are asked once. A Zipf-like draw over a fixed list of questions reproduces
that skew, and a seeded generator makes two runs (without and with the cache) ask exactly the
same questions in the same order, so their numbers compare like for like.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
#: The demo's own tenant: clearing it before a run can never touch an app's entries.
TENANT = "llmcache-demo"

SYSTEM_PROMPT = (
    "You are the support assistant of Acme Cloud. Answer in at most three sentences, "
    "in a friendly, precise tone."
)

QUESTIONS = (
    "How do I reset my password?",
    "What is your refund policy?",
    "How do I invite a teammate to my workspace?",
    "Which regions can I deploy to?",
    "How do I rotate an API key?",
    "Why was my card declined?",
    "How do I export my data as CSV?",
    "What are the rate limits of the free plan?",
    "How do I enable two-factor authentication?",
    "Can I change the billing currency?",
    "How do I delete my account?",
    "What does the error 'quota exceeded' mean?",
    "How do I connect a custom domain?",
    "Is my data encrypted at rest?",
    "How do I downgrade to the free plan?",
    "Where can I find my invoices?",
    "How do I set up single sign-on with Okta?",
    "What is the uptime SLA of the business plan?",
    "How do I restore a deleted project?",
    "Can I pay by bank transfer?",
    "How do I add a webhook?",
    "Why is my dashboard empty after login?",
    "How do I change the owner of an organization?",
    "What happens when my trial ends?",
    "How do I limit a teammate to read-only access?",
    "Do you support IPv6?",
    "How do I schedule a nightly backup?",
    "What is the maximum upload size?",
    "How do I migrate from Heroku?",
    "Can I get a discount for a non-profit?",
    "How do I read the audit log?",
    "Why do I get a 429 response?",
    "How do I move a project to another region?",
    "What payment methods do you accept?",
    "How do I contact a human?",
    "Is there an SDK for Go?",
    "How do I rename my workspace?",
    "Where is your status page?",
    "How do I verify my email address?",
    "Can I host in the EU only?",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One request of the workload: ``user`` asks ``question``."""

    user: str
    question: str


def zipf_weights(count: int, exponent: float = 1.1) -> list[float]:
    """Weight of the k-th most popular item, proportional to 1 / k**exponent."""
    return [1.0 / (rank**exponent) for rank in range(1, count + 1)]


def build_workload(calls: int, users: int, seed: int) -> list[Call]:
    """``calls`` requests from the first ``users`` users, questions drawn Zipf-like."""
    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}")
    if not 1 <= users <= len(USERS):
        raise ValueError(f"users must be between 1 and {len(USERS)}, got {users}")
    rng = random.Random(seed)
    people = USERS[:users]
    weights = zipf_weights(len(QUESTIONS))
    questions = rng.choices(QUESTIONS, weights=weights, k=calls)
    return [Call(user=rng.choice(people), question=q) for q in questions]
