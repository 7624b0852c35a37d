"""Single-flight: N concurrent identical misses cause one model call; the rest are served."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest, ConfigError
from llmcache.tiers.memory import MemoryTier

REQ = CacheRequest(model="m", prompt="What is the capital of France?")
N = 8


class Model:
    """A slow model call that counts itself; ``fail`` makes the leader's call fail."""

    def __init__(self, delay: float = 0.2) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()
        self.entered = threading.Barrier(N)

    def call(self) -> str:
        with self._lock:
            self.calls += 1
        threading.Event().wait(self.delay)
        return "Paris"


def cached_call(cache: Cache, model: Model) -> str:
    hit = cache.get(REQ)
    if hit is not None:
        return str(hit.entry.value)
    answer = model.call()
    cache.set(REQ, answer)
    return answer


def run_threads(fn: Any) -> list[Any]:
    start = threading.Barrier(N)

    def worker() -> Any:
        start.wait()
        return fn()

    with ThreadPoolExecutor(N) as pool:
        return list(pool.map(lambda _: worker(), range(N)))


def test_concurrent_threads_make_one_model_call() -> None:
    cache, model = Cache([MemoryTier()]), Model()
    answers = run_threads(lambda: cached_call(cache, model))
    assert answers == ["Paris"] * N
    assert model.calls == 1
    stats = cache.stats()
    assert (stats["misses"], stats["hits"]) == (1, N - 1)  # each lookup counted once


async def test_concurrent_tasks_make_one_model_call() -> None:
    cache, calls = Cache([MemoryTier()]), []

    async def call() -> str:
        hit = await cache.aget(REQ)
        if hit is not None:
            return str(hit.entry.value)
        calls.append(1)
        await asyncio.sleep(0.1)
        await cache.aset(REQ, "Paris")
        return "Paris"

    assert await asyncio.gather(*(call() for _ in range(32))) == ["Paris"] * 32
    assert len(calls) == 1


async def test_a_thread_leader_wakes_task_followers() -> None:
    cache, model = Cache([MemoryTier()]), Model(delay=0.3)
    leader = asyncio.get_running_loop().run_in_executor(None, cached_call, cache, model)
    await asyncio.sleep(0.05)  # the leader has missed and is calling the model
    followers = [cache.aget(REQ) for _ in range(5)]
    hits = await asyncio.gather(*followers)
    assert await leader == "Paris"
    assert [h.entry.value for h in hits if h is not None] == ["Paris"] * 5
    assert model.calls == 1


def test_followers_proceed_at_the_bound_when_the_leader_never_stores() -> None:
    cache = Cache([MemoryTier()], single_flight_timeout=0.3)
    model = Model(delay=0.0)
    leader_missed = threading.Event()

    def failing_leader() -> None:
        assert cache.get(REQ) is None  # leads the flight, then its model call fails
        leader_missed.set()

    thread = threading.Thread(target=failing_leader)
    thread.start()
    leader_missed.wait(5)
    thread.join()
    answers = [cached_call(cache, model) for _ in range(3)]  # waits once, then goes on
    assert answers == ["Paris"] * 3
    assert model.calls == 1  # the first follower called the model; the next were hits


@pytest.mark.timeout(20)
def test_a_leader_retrying_its_own_key_does_not_wait_for_itself() -> None:
    cache = Cache([MemoryTier()], single_flight_timeout=60)
    assert cache.get(REQ) is None  # leads; its model call "fails"
    assert cache.get(REQ) is None  # the retry: same thread, no 60 s wait
    assert cache.stats()["misses"] == 2


def test_single_flight_can_be_turned_off() -> None:
    cache, model = Cache([MemoryTier()], single_flight_timeout=None), Model(delay=0.0)

    def call() -> str:
        if cache.get(REQ) is None:
            model.entered.wait(5)  # every caller reached the model: none waited
            model.call()
        return "ok"

    run_threads(call)
    assert model.calls == N
    with pytest.raises(ConfigError, match="single_flight_timeout"):
        Cache([MemoryTier()], single_flight_timeout=-1)


class SlowChat(BaseChatModel):
    delay: float = 0.2
    _calls: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "slow-chat"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        with self._lock:
            self._calls += 1
        threading.Event().wait(self.delay)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="Paris"))])


def test_langchain_batch_of_identical_prompts_calls_the_model_once() -> None:
    llm = SlowChat(cache=LangChainCache(Cache([MemoryTier()])))
    replies = llm.batch(["Capital of France?"] * N, config={"max_concurrency": N})
    assert [r.content for r in replies] == ["Paris"] * N
    assert llm._calls == 1
    assert len({r.id for r in replies}) == N  # every reply its own message


async def test_langchain_abatch_of_identical_prompts_calls_the_model_once() -> None:
    llm = SlowChat(cache=LangChainCache(Cache([MemoryTier()])))
    replies = await llm.abatch(["Capital of France?"] * N)
    assert [r.content for r in replies] == ["Paris"] * N
    assert llm._calls == 1


def test_flights_of_leaders_that_never_stored_are_swept() -> None:
    from llmcache import FakeClock
    from llmcache.singleflight import SWEEP_ABOVE, Flights

    clock = FakeClock(0.0)
    flights = Flights(timeout=1.0, clock=clock)
    for i in range(SWEEP_ABOVE):
        assert flights.join(i.to_bytes(4, "big")) is None  # each leads; none ever stores
    clock.advance(1.0)
    flights.join(b"new")
    assert len(flights) == 1


def test_a_flight_asked_again_is_swept_by_its_new_age_and_the_stale_ones_still_go() -> None:
    # The sweep stops at the first live flight (they are kept in age order): a flight asked
    # again must move behind the older ones, or it would shield every stale flight after it.
    from llmcache import FakeClock
    from llmcache.singleflight import SWEEP_ABOVE, Flights

    clock = FakeClock(0.0)
    flights = Flights(timeout=1.0, clock=clock)
    assert flights.join(b"again") is None
    for i in range(SWEEP_ABOVE - 1):
        assert flights.join(i.to_bytes(4, "big")) is None
    clock.advance(0.9)
    assert flights.join(b"again") is None  # the same leader asks again: a new flight
    clock.advance(0.1)
    assert flights.join(b"new") is None
    assert len(flights) == 2  # "again" (0.1 s old) and "new"; the 1,023 stale ones are gone


class FailingFirstChat(SlowChat):
    """Its first call fails (a rate limit, say) after ``delay``; later calls answer."""

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        with self._lock:
            self._calls += 1
            first = self._calls == 1
        threading.Event().wait(self.delay)
        if first:
            raise RuntimeError("429: rate limited")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="Paris"))])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages)


@pytest.mark.timeout(20)
async def test_a_task_leader_that_fails_releases_its_followers_at_once() -> None:
    """The leader's task ends without storing: its followers do not wait for the bound (30 s
    here), and one of them leads the second try; the others are served its answer."""
    llm = FailingFirstChat(cache=LangChainCache(Cache([MemoryTier()], single_flight_timeout=30)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await asyncio.gather(
        *(llm.ainvoke("Capital of France?") for _ in range(N)), return_exceptions=True
    )
    errors = [r for r in replies if isinstance(r, Exception)]
    assert [str(e) for e in errors] == ["429: rate limited"]  # the first leader's, only
    assert [r.content for r in replies if not isinstance(r, Exception)] == ["Paris"] * (N - 1)
    assert llm._calls == 2  # the failed call and one more, not one per follower
    assert loop.time() - started < 10  # released when the leader failed, not at the bound


@pytest.mark.timeout(20)
async def test_a_cancelled_task_leader_releases_its_followers_at_once() -> None:
    cache, model = Cache([MemoryTier()], single_flight_timeout=30), Model(delay=0.1)
    leading = asyncio.Event()

    async def leader() -> None:
        assert await cache.aget(REQ) is None
        leading.set()
        await asyncio.sleep(60)  # "calling the model" until the request is cancelled

    async def follower() -> str:
        hit = await cache.aget(REQ)
        if hit is not None:
            return str(hit.entry.value)
        answer = await asyncio.to_thread(model.call)
        await cache.aset(REQ, answer)
        return answer

    lead = asyncio.create_task(leader())
    await leading.wait()
    followers = [asyncio.create_task(follower()) for _ in range(N)]
    await asyncio.sleep(0.05)  # they are waiting for the leader
    lead.cancel()
    assert await asyncio.gather(*followers) == ["Paris"] * N
    assert model.calls == 1


def test_followers_elect_one_new_leader_at_the_bound() -> None:
    """A thread leader that never stores cannot be watched: its followers wait for the bound,
    then the first of them to rejoin leads and the others are served its answer."""
    # The new leader's call (50 ms) must end well inside the bound its followers then wait.
    cache, model = Cache([MemoryTier()], single_flight_timeout=1.0), Model(delay=0.05)
    assert cache.get(REQ) is None  # this thread leads; its model call "fails"
    answers = run_threads(lambda: cached_call(cache, model))  # other threads: followers
    assert answers == ["Paris"] * N
    assert model.calls == 1  # before: each follower called the model at the bound


async def test_a_long_lived_task_that_leads_many_flights_keeps_no_watch_on_them() -> None:
    """A task that leads flight after flight (a worker looping over prompts) and stores each
    must not collect one done-callback per flight."""
    cache = Cache([MemoryTier()])
    task = asyncio.current_task()
    assert task is not None
    before = len(task._callbacks or ())  # type: ignore[attr-defined]
    for i in range(200):
        request = CacheRequest(model="m", prompt=f"q{i}")
        assert await cache.aget(request) is None  # leads
        await cache.aset(request, "a")
    assert len(task._callbacks or ()) == before  # type: ignore[attr-defined]


async def test_a_leader_whose_answer_is_stored_by_another_task_is_not_abandoned() -> None:
    """LiteLLM stores an async call's answer in a background task, after the call (the
    leader's task) has returned: its followers must wait for that store, not elect a new
    leader and call the model again."""
    cache, model = Cache([MemoryTier()], single_flight_timeout=30), Model(delay=0.0)
    background: list[asyncio.Task[None]] = []

    async def store_later() -> None:
        await asyncio.sleep(0.1)
        await cache.aset(REQ, model.call())

    async def leader() -> None:
        assert await cache.aget(REQ) is None
        background.append(asyncio.create_task(store_later()))  # the call returns meanwhile

    async def follower() -> str | None:
        hit = await cache.aget(REQ)
        return None if hit is None else str(hit.entry.value)

    await asyncio.create_task(leader())
    assert await asyncio.gather(*(follower() for _ in range(N))) == ["Paris"] * N
    assert model.calls == 1
    await asyncio.gather(*background)
