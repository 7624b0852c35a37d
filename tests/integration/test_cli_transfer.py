"""``llmcache import`` into real stores: a bad line is skipped and listed, never a tier error
that stops the whole import."""

from __future__ import annotations

import io
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from llmcache import Cache, CacheRequest
from llmcache.cli.app import cli
from llmcache.policy import MAX_TTL

ASKED = [CacheRequest(model="m", prompt=f"q{i}", model_name="gpt-x") for i in range(3)]


@pytest.mark.parametrize("far", [1e300, 253_402_300_799.0])  # year 9999: 100 years + many
def test_an_expiry_beyond_100_years_is_a_listed_line_not_a_redis_error(
    redis_prefix_url: str, tmp_path: Path, far: float
) -> None:
    source = Cache.from_urls(["memory://"], fleet_stats=False)
    for request in ASKED:
        source.set(request, request.prompt, ttl=None)
    out = io.BytesIO()
    source.export_entries(out)
    header, *rows = out.getvalue().splitlines()
    rows[1] = orjson.dumps({**orjson.loads(rows[1]), "expires": far})  # Redis PX overflowed
    path = tmp_path / "far.jsonl"
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")

    result = CliRunner().invoke(cli, ["import", "--url", redis_prefix_url, str(path)])
    assert result.exit_code == 1, result.output
    assert result.stdout == "imported 2 entries; skipped 0 expired and 1 invalid lines\n"
    assert result.stderr == (
        f"llmcache: line 3: field 'expires' is more than {MAX_TTL:.0f} seconds (100 years) "
        "from now; null means no expiry\n"
    )
    with Cache.from_urls([redis_prefix_url], fleet_stats=False) as target:
        served = [target.get(request) is not None for request in ASKED]
        assert served.count(True) == 2
        listed = list(target.entries())
    assert all(s.expires_at is None or s.expires_at <= time.time() + MAX_TTL for s in listed)
