"""Single-flight: N concurrent identical misses cause one model call; the rest are served."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import relay_fixture
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from langchain_llmcache import LangChainCache
from llmcache import Cache, CachePolicy, CacheRequest, ConfigError
from llmcache.singleflight import ABANDON_AFTER, relay_package
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


async def acached_call(cache: Cache, model: Model) -> str:
    hit = await cache.aget(REQ)
    if hit is not None:
        return str(hit.entry.value)
    answer = await asyncio.to_thread(model.call)
    await cache.aset(REQ, answer)
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

    lead = asyncio.create_task(leader())
    await leading.wait()
    followers = [asyncio.create_task(acached_call(cache, model)) for _ in range(N)]
    await asyncio.sleep(0.05)  # they are waiting for the leader
    lead.cancel()
    assert await asyncio.gather(*followers) == ["Paris"] * N
    assert model.calls == 1


def test_followers_elect_one_new_leader_at_the_bound() -> None:
    """A thread leader still inside the call that asked (here the test itself, which goes on)
    but never storing holds its followers until the bound; then the first of them to rejoin
    leads and the others are served its answer."""
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
    assert await asyncio.gather(*(acached_call(cache, model) for _ in range(N))) == ["Paris"] * N
    assert model.calls == 1
    await asyncio.gather(*background)


@pytest.mark.timeout(30)
def test_a_thread_leader_that_fails_releases_its_followers_long_before_the_bound() -> None:
    """LangChain's ``batch`` runs each prompt in a pool thread: the leader's call raises, its
    thread goes back to the pool. Its followers see that the call it led is over and elect a
    new leader then, not at the bound (20 s here)."""
    llm = FailingFirstChat(
        cache=LangChainCache(Cache([MemoryTier()], single_flight_timeout=20)), delay=0.3
    )
    started = time.monotonic()
    replies = llm.batch(
        ["Capital of France?"] * N, config={"max_concurrency": N}, return_exceptions=True
    )
    errors = [r for r in replies if isinstance(r, Exception)]
    assert [str(e) for e in errors] == ["429: rate limited"]  # the first leader's, only
    assert [r.content for r in replies if not isinstance(r, Exception)] == ["Paris"] * (N - 1)
    assert llm._calls == 2  # the failed call and one more, not one per follower
    assert time.monotonic() - started < 10  # released when the call failed, not at the bound


def failing_thread_leader(cache: Cache) -> threading.Thread:
    """A thread that leads REQ's flight and ends without storing (its model call failed),
    started once it leads."""
    leading = threading.Event()

    def lead() -> None:
        assert cache.get(REQ) is None
        leading.set()
        time.sleep(0.3)  # the model call, which then fails: nothing is stored

    thread = threading.Thread(target=lead)
    thread.start()
    assert leading.wait(5)
    return thread


def answers_while_leading(
    cache: Cache, model: Model, lead: Callable[[threading.Event], None]
) -> list[str]:
    """``lead`` runs in a thread of its own and sets the event once it leads REQ's flight;
    then N threads ask REQ through ``cached_call``. Their answers, once the leader is done."""
    leading = threading.Event()
    leader = threading.Thread(target=lead, args=(leading,))
    leader.start()
    assert leading.wait(5)
    with ThreadPoolExecutor(N) as pool:
        answers = list(pool.map(lambda _: cached_call(cache, model), range(N)))
    leader.join()
    return answers


@pytest.mark.timeout(30)
def test_thread_followers_of_a_thread_leader_that_ended_elect_one_new_leader() -> None:
    cache, model = Cache([MemoryTier()], single_flight_timeout=20), Model(delay=0.05)
    leader = failing_thread_leader(cache)
    started = time.monotonic()
    with ThreadPoolExecutor(N) as pool:
        answers = list(pool.map(lambda _: cached_call(cache, model), range(N)))
    assert answers == ["Paris"] * N
    assert model.calls == 1  # one follower led the next try; the others were served it
    assert time.monotonic() - started < 10
    leader.join()


@pytest.mark.timeout(30)
async def test_task_followers_of_a_thread_leader_that_ended_elect_one_new_leader() -> None:
    cache, model = Cache([MemoryTier()], single_flight_timeout=20), Model(delay=0.05)
    leader = await asyncio.to_thread(failing_thread_leader, cache)
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await asyncio.gather(*(acached_call(cache, model) for _ in range(N))) == ["Paris"] * N
    assert model.calls == 1
    assert loop.time() - started < 10
    await asyncio.to_thread(leader.join)


@pytest.mark.timeout(30)
def test_a_thread_leader_still_calling_the_model_is_not_abandoned() -> None:
    """A slow call (several times the watch's grace) keeps its followers waiting for it: they
    are served its answer and never call the model themselves."""
    cache, model = Cache([MemoryTier()], single_flight_timeout=20), Model(delay=0.0)

    def slow_leader(leading: threading.Event) -> None:
        assert cache.get(REQ) is None
        leading.set()
        time.sleep(4 * ABANDON_AFTER)  # the model call
        cache.set(REQ, "Paris (from the leader)")

    assert answers_while_leading(cache, model, slow_leader) == ["Paris (from the leader)"] * N
    assert model.calls == 0


@pytest.mark.timeout(30)
def test_a_leader_in_a_relaying_package_is_watched_at_its_caller() -> None:
    """Frames of a package declared a relay (LiteLLM's caching handler) are not the call: the
    one watched is their caller, which goes on to call the model. A relay that returns right
    after the lookup does not make the flight look abandoned."""
    relay_package("relay_fixture")
    cache, model = Cache([MemoryTier()], single_flight_timeout=20), Model(delay=0.0)

    def caller(leading: threading.Event) -> None:
        assert relay_fixture.look_up(cache, REQ) is None  # the relay returns at once
        leading.set()
        time.sleep(4 * ABANDON_AFTER)
        cache.set(REQ, "Paris (from the leader)")

    assert answers_while_leading(cache, model, caller) == ["Paris (from the leader)"] * N
    assert model.calls == 0


class StoreBeforeJoin(Cache):
    """A cache on which the next caller's join is preceded by ``before_join`` (run once): the
    interleaving where a leader stores, and ends its flight, between a follower's lookup and
    its join, made certain instead of left to the scheduler."""

    before_join: Any = None

    def _join_flight(self, key: Any, request: CacheRequest) -> Any:
        if self.before_join is not None:
            run, self.before_join = self.before_join, None
            run()
        return super()._join_flight(key, request)


def test_a_caller_whose_lookup_missed_just_before_the_leader_stored_is_served() -> None:
    cache = StoreBeforeJoin([MemoryTier()])
    leader = threading.Thread(target=lambda: cache.get(REQ))  # leads, then "calls the model"
    leader.start()
    leader.join()
    cache.before_join = lambda: cache.set(REQ, "Paris")  # lands after the follower's lookup
    hit = cache.get(REQ)
    assert hit is not None  # before: it missed, and led a second model call
    assert hit.entry.value == "Paris"
    assert len(cache._flights or ()) == 0  # and it left no flight open for others to wait on


def test_a_leader_on_a_green_thread_is_not_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """gevent and eventlet give each green thread an id that the interpreter's view of thread
    stacks does not know: such a leader cannot be watched, so its followers wait for it (up to
    the bound) instead of taking it for gone and calling the model again."""
    from llmcache import singleflight

    monkeypatch.setattr(singleflight.threading, "get_ident", lambda: 2**60 + 7)  # a greenlet's
    flights = singleflight.Flights(timeout=30)
    assert flights.join(b"key") is None  # leads
    assert flights._open[b"key"]._call is None  # not watched
    monkeypatch.undo()
    assert flights.join(b"other") is None  # a real thread
    assert flights._open[b"other"]._call is not None


@pytest.mark.timeout(30)
def test_followers_wait_for_a_leader_that_retries_its_call() -> None:
    """The leader's call fails and it tries again in its own thread (LiteLLM retries a rate
    limit this way): it leads on, and its followers keep waiting for the retry's answer
    instead of each calling the model."""
    cache, model = Cache([MemoryTier()], single_flight_timeout=20), Model(delay=0.0)

    def retrying_leader(leading: threading.Event) -> None:
        assert cache.get(REQ) is None  # the first try, which fails
        leading.set()
        time.sleep(0.2)
        assert cache.get(REQ) is None  # the retry: no wait for itself, still the leader
        time.sleep(0.2)
        cache.set(REQ, "Paris (the retry's)")

    assert answers_while_leading(cache, model, retrying_leader) == ["Paris (the retry's)"] * N
    assert model.calls == 0  # before: the retry released them, and each called the model


class UnstorableChat(SlowChat):
    """Answers with a generation_info value that is not JSON: llmcache cannot store it.
    Counts how many calls run at once."""

    _running: int = PrivateAttr(default=0)
    _most: int = PrivateAttr(default=0)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        with self._lock:
            self._calls += 1
            self._running += 1
            self._most = max(self._most, self._running)
        threading.Event().wait(self.delay)
        with self._lock:
            self._running -= 1
        generation = ChatGeneration(
            message=AIMessage(content="Paris"), generation_info={"raw": object()}
        )
        return ChatResult(generations=[generation])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages)


def test_followers_of_a_leader_whose_answer_cannot_be_stored_call_the_model_at_once() -> None:
    """The leader's answer is not stored (not JSON), so waiting for it is pointless: its
    followers go on at once, together, as after a refused store; they neither wait for the
    leader to be seen gone nor call the model one after the other (8 calls took 7.4 s)."""
    llm = UnstorableChat(
        cache=LangChainCache(Cache([MemoryTier()], single_flight_timeout=20)), delay=0.3
    )
    started = time.monotonic()
    replies = llm.batch(["Capital of France?"] * N, config={"max_concurrency": N})
    assert [r.content for r in replies] == ["Paris"] * N
    assert llm._calls == N  # nothing could be served from the cache
    assert llm._most > 1  # the followers' calls ran together
    assert time.monotonic() - started < 5


async def test_task_followers_of_a_leader_whose_answer_cannot_be_stored_go_on_at_once() -> None:
    llm = UnstorableChat(
        cache=LangChainCache(Cache([MemoryTier()], single_flight_timeout=20)), delay=0.3
    )
    started = asyncio.get_running_loop().time()
    replies = await asyncio.gather(*(llm.ainvoke("Capital of France?") for _ in range(N)))
    assert [r.content for r in replies] == ["Paris"] * N
    assert llm._calls == N
    assert llm._most > 1
    assert asyncio.get_running_loop().time() - started < 5


@pytest.mark.timeout(20)
def test_a_failed_leader_in_an_asyncio_run_releases_a_thread_follower() -> None:
    """A leader that is a task of ``asyncio.run`` in another thread fails, and ``asyncio.run``
    closes its loop before the loop's timer abandons the flight: its follower sees the task
    ended and goes on (here it leads the next try) instead of waiting out the bound (30 s)."""
    cache = Cache([MemoryTier()], single_flight_timeout=30)
    leading, fail = threading.Event(), threading.Event()

    async def failing_call() -> None:
        assert await cache.aget(REQ) is None  # leads
        leading.set()
        await asyncio.to_thread(fail.wait, 5)
        raise RuntimeError("429: rate limited")

    def request_thread() -> None:
        with pytest.raises(RuntimeError):
            asyncio.run(failing_call())

    thread = threading.Thread(target=request_thread)
    thread.start()
    assert leading.wait(5)
    threading.Timer(0.2, fail.set).start()  # the leader fails while its follower waits
    assert cache.get(REQ) is None  # the leader gave up: this caller leads the next try
    thread.join()
    cache.set(REQ, "Paris")
    hit = cache.get(REQ)
    assert hit is not None and hit.entry.value == "Paris"


class StartedChat(SlowChat):
    """Says when its first call has started."""

    _started: Any = PrivateAttr(default_factory=threading.Event)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self._started.set()
        return super()._generate(messages, stop, run_manager, **kwargs)


@pytest.mark.timeout(20)
async def test_a_sync_call_on_the_loop_of_its_task_leader_does_not_block_it() -> None:
    """A coroutine makes a blocking (sync) call of a prompt that a task of the same loop is
    computing (Jupyter, an async handler calling sync code): waiting would block the loop, and
    with it the leader, until the bound. The sync call goes on and calls the model itself;
    the leader is not stalled and both get an answer."""
    llm = StartedChat(cache=LangChainCache(Cache([MemoryTier()], single_flight_timeout=30)))
    leader = asyncio.create_task(llm.ainvoke("Capital of France?"))
    assert await asyncio.to_thread(llm._started.wait, 5)  # the leader is calling the model
    assert llm.invoke("Capital of France?").content == "Paris"
    assert (await leader).content == "Paris"
    assert llm._calls == 2


@pytest.mark.parametrize(
    "policy",
    [CachePolicy(default_ttl=0), CachePolicy(ttl_by_model={"m": 0})],
    ids=["default_ttl=0", "ttl_by_model=0"],
)
def test_calls_the_policy_stores_nothing_for_do_not_wait_for_each_other(
    policy: CachePolicy,
) -> None:
    # Their leader's store is refused: a follower waited for its whole model call, then
    # called the model itself (two calls' time instead of one).
    request = CacheRequest(model="m", model_name="m", prompt="What is the capital of France?")
    cache = Cache([MemoryTier()], policy=policy, single_flight_timeout=30)
    assert cache.get(request) is None  # the first caller: its model call is under way
    answered = threading.Event()

    def second_caller() -> None:
        assert cache.get(request) is None
        answered.set()

    threading.Thread(target=second_caller, daemon=True).start()
    assert answered.wait(5)  # not held until the first one's store
    assert cache.set(request, "not stored") is False
