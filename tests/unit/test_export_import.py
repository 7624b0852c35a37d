"""Export and import through the API and the CLI, on memory and SQLite: what survives a round
trip, what is skipped (expired entries, invalid lines: reported with their number), what an
import replaces."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from llmcache import Cache, CachePolicy, CacheRequest, FakeClock, Scope, Usage
from llmcache.cli.app import cli
from llmcache.crypto import Sealer
from llmcache.errors import ExportFileError
from llmcache.policy import MAX_TTL
from llmcache.transfer import import_entries

ALICE = Scope.of(user="alice", tenant="acme")
TAGGED = CacheRequest(model="m", prompt="tagged", model_name="gpt-x", scope=ALICE, tags=("faq",))
SHORT = CacheRequest(model="m", prompt="short-lived", model_name="gpt-x")
FOREVER = CacheRequest(model="m", prompt="forever", model_name="gpt-x", namespace="v2")


def exported(cache: Cache, **filters: object) -> bytes:
    out = io.BytesIO()
    cache.export_entries(out, **filters)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.fixture
def source(fake_clock: FakeClock) -> Cache:
    cache = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    cache.set(TAGGED, {"content": "tagged", "n": [1, None]}, usage=Usage(7, 3), ttl=None)
    cache.set(SHORT, "short", ttl=10)
    cache.set(FOREVER, "", ttl=None)  # an empty answer is an answer
    return cache


def test_a_round_trip_keeps_values_usage_tags_times_and_scopes(
    source: Cache, fake_clock: FakeClock, tmp_path: Path
) -> None:
    data = exported(source)
    target = Cache.from_urls([f"sqlite:///{tmp_path}/t.db"], clock=fake_clock, fleet_stats=False)
    report = target.import_entries(io.BytesIO(data))
    assert (report.imported, report.expired, report.rejected) == (3, 0, 0)
    for request in (TAGGED, SHORT, FOREVER):
        hit, original = target.get(request), source.get(request)
        assert hit is not None and original is not None
        assert hit.entry == original.entry  # value, created, expiry, model, usage, tags
    assert target.get(CacheRequest(model="m", prompt="tagged", model_name="gpt-x")) is None
    fake_clock.advance(11)
    assert target.get(SHORT) is None  # its expiry came along


def test_filters_choose_what_is_exported(source: Cache) -> None:
    assert len(exported(source, tags=["faq"]).splitlines()) == 2
    assert len(exported(source, scope=ALICE).splitlines()) == 2
    assert len(exported(source, namespace="v2").splitlines()) == 2
    assert len(exported(source, model="other").splitlines()) == 1  # the header only


def test_expired_entries_are_skipped(source: Cache, fake_clock: FakeClock) -> None:
    data = exported(source)
    later = FakeClock(start=fake_clock() + 60)
    target = Cache.from_urls(["memory://"], clock=later, fleet_stats=False)
    report = target.import_entries(io.BytesIO(data))
    assert (report.imported, report.expired) == (2, 1)
    assert target.get(SHORT) is None and target.get(TAGGED) is not None


def test_an_import_replaces_an_entry_of_the_same_key(source: Cache, fake_clock: FakeClock) -> None:
    target = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    target.set(TAGGED, "the target's own answer")
    target.import_entries(io.BytesIO(exported(source)))
    hit = target.get(TAGGED)
    assert hit is not None and hit.entry.value == {"content": "tagged", "n": [1, None]}


def _bad_lines(good: bytes) -> list[bytes]:
    row = orjson.loads(good)
    return [
        good[: len(good) // 2],  # truncated
        b"[1, 2, 3]",
        orjson.dumps({**row, "key": "zz" * 32}),
        orjson.dumps({**row, "scope": "00"}),
        orjson.dumps({**row, "created": "yesterday"}),
        orjson.dumps({**row, "tags": ["ok", ""]}),
        orjson.dumps({**row, "s": 99}),
        orjson.dumps({**row, "semantic": {"partition": "00" * 16, "text": 5}}),
        orjson.dumps({k: v for k, v in row.items() if k != "value"}),
    ]


def test_invalid_lines_are_reported_with_their_number_and_skipped(
    source: Cache, fake_clock: FakeClock
) -> None:
    header, *rows = exported(source).splitlines()
    bad = _bad_lines(rows[0])
    data = b"\n".join([header, rows[0], *bad, b"", rows[1], b"x" * 5000, rows[2]]) + b"\n"
    target = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    report = import_entries(target, io.BytesIO(data), max_line_bytes=4096)
    assert report.imported == 3
    assert report.rejected == len(bad) + 1
    numbers = [line for line, _ in report.problems]
    assert numbers == [*range(3, 3 + len(bad)), len(bad) + 5]  # line 1 is the header
    reasons = dict(report.problems)
    assert "not valid JSON" in reasons[3] and "not a JSON object" in reasons[4]
    assert "'key' is not 64 hex digits" in reasons[5]
    assert "longer than 4096 bytes" in reasons[len(bad) + 5]


@pytest.mark.parametrize(
    "expires",
    [1e300, 253_402_300_799.0, 1_700_000_000.0 + MAX_TTL + 86_400],  # year 9999; 100 y + 1 day
)
def test_an_expiry_beyond_100_years_is_an_invalid_line(
    source: Cache, fake_clock: FakeClock, expires: float
) -> None:
    header, *rows = exported(source).splitlines()
    far = orjson.dumps({**orjson.loads(rows[0]), "expires": expires})
    data = b"\n".join([header, far, *rows[1:]]) + b"\n"
    target = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    report = target.import_entries(io.BytesIO(data))
    assert (report.imported, report.rejected) == (2, 1)
    assert report.problems == [
        (2, f"field 'expires' is more than {MAX_TTL:.0f} seconds (100 years) from now; "
            "null means no expiry")
    ]  # fmt: skip


def test_an_expiry_just_under_100_years_is_imported(source: Cache, fake_clock: FakeClock) -> None:
    header, row = exported(source, tags=["faq"]).splitlines()
    expires = fake_clock() + MAX_TTL - 1
    data = header + b"\n" + orjson.dumps({**orjson.loads(row), "expires": expires}) + b"\n"
    target = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    assert target.import_entries(io.BytesIO(data)).imported == 1
    hit = target.get(TAGGED)
    assert hit is not None and hit.entry.expires_at == expires


@pytest.mark.parametrize(
    ("first_line", "message"),
    [
        (b"", "the file is empty"),
        (b"{}", "not an llmcache export header"),
        (b"not json at all", "not an llmcache export header"),
        (b'{"format": "llmcache-export", "version": 7}', "newer llmcache"),
        (b'{"format": "llmcache-export", "version": "1"}', "'version' is not a positive integer"),
    ],
)
def test_a_file_that_is_not_an_export_is_refused(first_line: bytes, message: str) -> None:
    with pytest.raises(ExportFileError, match=message):
        Cache.from_urls(["memory://"]).import_entries(io.BytesIO(first_line))


def test_the_cli_lists_the_invalid_lines_and_exits_1(tmp_path: Path) -> None:
    source = Cache.from_urls(["memory://"], fleet_stats=False)  # the wall clock, as the CLI's
    source.set(TAGGED, "a", ttl=None)
    source.set(FOREVER, "b", ttl=None)
    header, *rows = exported(source).splitlines()
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([header, rows[0], rows[0][:40], rows[1]]) + b"\n")
    url = f"sqlite:///{tmp_path}/cli.db"
    result = CliRunner().invoke(cli, ["import", "--url", url, str(path)])
    assert result.exit_code == 1, result.output
    assert result.stdout == "imported 2 entries; skipped 0 expired and 1 invalid lines\n"
    assert result.stderr.startswith("llmcache: line 3: not valid JSON")
    as_json = CliRunner().invoke(cli, ["import", "--url", url, str(path), "--json"])
    assert json.loads(as_json.stdout)["problems"][0]["line"] == 3


def test_the_cli_refuses_a_file_that_is_not_an_export(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    result = CliRunner().invoke(cli, ["import", "--url", "memory://", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("llmcache: error: line 1 is not an llmcache export header")
    missing = CliRunner().invoke(cli, ["import", "--url", "memory://", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


async def test_async_listing_and_put_match_sync(source: Cache, fake_clock: FakeClock) -> None:
    listed = [s async for s in source.aentries()]
    assert sorted(s.key for s in listed) == sorted(s.key for s in source.entries())
    target = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    outcome = await target.aput_entries(listed)
    assert outcome == (3, ())
    hit = await target.aget(TAGGED)
    assert hit is not None and hit.entry.usage == Usage(7, 3)


def test_the_cli_reports_a_file_it_cannot_write_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["export", "--url", "memory://", "-o", str(tmp_path / "no-such-dir" / "x.jsonl")]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "No such file or directory" in result.stderr
    assert result.stderr.startswith("llmcache: error: ")


def test_provider_prompt_cache_tokens_survive_an_export_and_import(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    source = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False)
    source.set(SHORT, "discounted", usage=Usage(1000, 20, 400, 100), ttl=None)
    target = Cache.from_urls([f"sqlite:///{tmp_path}/t.db"], clock=fake_clock, fleet_stats=False)
    assert target.import_entries(io.BytesIO(exported(source))).imported == 1
    hit = target.get(SHORT)
    assert hit is not None and hit.entry.usage == Usage(1000, 20, 400, 100)
    target.close()


def test_the_cli_export_exits_1_when_entries_could_not_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    url = f"sqlite:///{tmp_path}/sealed.db"
    monkeypatch.delenv("LLMCACHE_ENCRYPTION_KEYS", raising=False)
    with Cache.from_urls([url], encryption=Sealer({"k1": os.urandom(32)})) as sealed:
        sealed.set(TAGGED, "sealed one", ttl=None)
        sealed.set(SHORT, "sealed two", ttl=None)
    with Cache.from_urls([url], encryption=False) as plain:
        plain.set(FOREVER, "plain", ttl=None)
    out = tmp_path / "partial.jsonl"
    result = CliRunner().invoke(cli, ["export", "--url", url, "-o", str(out)])  # no keys here
    assert result.exit_code == 1, result.output
    assert "exported 1 entries" in result.stderr
    assert "llmcache: error: 2 of 3 entries could not be read" in result.stderr
    assert "LLMCACHE_ENCRYPTION_KEYS" in result.stderr
    rows = out.read_bytes().splitlines()[1:]  # what could be read is written all the same
    assert [orjson.loads(row)["value"] for row in rows] == ["plain"]
    as_json = CliRunner().invoke(cli, ["export", "--url", url, "-o", str(out), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["unreadable"] == 2


def test_an_entry_the_cache_stored_imports_under_the_same_max_entry_bytes(
    fake_clock: FakeClock,
) -> None:
    # The bound is the entry's size, as when it was stored, not its export line's (which
    # adds the key's digests): an export must import into a cache with the same policy.
    policy = CachePolicy(max_entry_bytes=2000)
    source = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False, policy=policy)
    assert source.set(TAGGED, {"content": "x" * 1850}, ttl=None)
    target = Cache.from_urls(["memory://"], clock=fake_clock, fleet_stats=False, policy=policy)
    report = target.import_entries(io.BytesIO(exported(source)))
    assert (report.imported, report.rejected) == (1, 0)
    hit = target.get(TAGGED)
    assert hit is not None and hit.entry.value == {"content": "x" * 1850}
