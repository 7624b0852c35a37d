"""Export and import: a cache's entries as JSON Lines, to move them between backends.

The file is one JSON object per line. The first line is a header::

    {"format": "llmcache-export", "version": 1, "llmcache": "0.1.0", "created": 1.7e9,
     "embedding_model": "all-MiniLM-L6-v2" | null}

and every other line one entry: the stored entry's own fields (``entry.py``: ``s``,
``value``, ``created``, ``expires``, ``model``, ``usage``, ``tags``), its key's digests in hex
(``key``, ``scope``, ``namespace``; the model's digest is recomputed from ``model``), and,
when the exporting cache has a semantic tier, ``semantic``: the partition (hex) and the text
that was embedded. Vectors are not exported: they belong to one embedding model and are
large; the importing cache embeds the texts with its own embedder (so an export made with one
model imports into a cache using another). ``embedding_model`` records the exporter's.

Encryption at rest: an export holds the opened values, so it is as sensitive as the prompts
and answers themselves; the importing cache seals them again with its own keys. Entries the
exporting process cannot open (sealed under keys it lacks) are not exported, and counted.

Import validates every line on its own: one that is too long (``max_line_bytes``), not JSON,
or whose fields are wrong (an expiry more than ``policy.MAX_TTL`` from now among them) is
reported with its line number and skipped; the others are imported. Entries already expired
are skipped (counted); the rest keep their created time and expiry. An entry whose key the
importing cache holds already is replaced (an upsert: the same key means the same question in
the same scope). An import writes exactly what the file says under the keys it names, scopes
included: import only files you trust.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import orjson

import llmcache
from llmcache.entry import ENTRY_SCHEMA, MAX_DECODE_BYTES, encode, from_doc, usage_fields
from llmcache.errors import CodecError, ExportFileError, TierError
from llmcache.keys import CacheKey, _to_jsonable, label_digest
from llmcache.policy import MAX_TTL
from llmcache.request import MAX_TAGS, Scope
from llmcache.stored import StoredEntry

if TYPE_CHECKING:
    from llmcache.cache import Cache

FORMAT = "llmcache-export"
FORMAT_VERSION = 1
#: The longest line an import reads (an entry's value may be up to MAX_DECODE_BYTES).
MAX_LINE_BYTES = MAX_DECODE_BYTES + 64 * 1024
#: The longest embedded text an import indexes (a last user turn, not a document).
MAX_TEXT_CHARS = 1_000_000
#: The longest model name or tag an import takes (labels are digested and cached).
MAX_LABEL_CHARS = 4096
#: Entries written to the tiers (and embedded) together: at most this many, and no more lines
#: than this many bytes (a batch is held in memory).
IMPORT_BATCH = 64
IMPORT_BATCH_BYTES = 8 * 1024 * 1024
#: Rejected lines an import report lists (all are counted).
MAX_LISTED_PROBLEMS = 50


@dataclass(slots=True)
class ExportReport:
    exported: int = 0
    with_semantic: int = 0  # rows carrying a semantic text
    unreadable: int = 0  # entries this process could not read (sealed, undecodable)


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    expired: int = 0  # already expired at import: skipped
    rejected: int = 0  # invalid lines: skipped
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why), the first ones
    embedding_model: str | None = None  # the exporter's, from the header

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append((line, reason))


# ---------------------------------------------------------------------------- export
def export_entries(
    cache: Cache,
    out: IO[bytes],
    *,
    tags: Iterable[str] | None = None,
    scope: Scope | None = None,
    model: str | None = None,
    namespace: str | None = None,
    tier: str | None = None,
) -> ExportReport:
    semantic = cache.semantic
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "llmcache": llmcache.__version__,
        "created": cache.clock(),
        "embedding_model": None if semantic is None else semantic.embedder.name,
    }
    out.write(orjson.dumps(header) + b"\n")
    report = ExportReport()
    listed = cache.entries(
        tags=tags,
        scope=scope,
        model=model,
        namespace=namespace,
        tier=tier,
        with_semantic=semantic is not None,
    )
    for stored in listed:
        if stored.entry is None:
            report.unreadable += 1
            continue
        out.write(encode_row(stored) + b"\n")
        report.exported += 1
        report.with_semantic += stored.semantic is not None
    return report


def encode_row(stored: StoredEntry) -> bytes:
    entry = stored.entry
    assert entry is not None
    row: dict[str, Any] = {
        "s": ENTRY_SCHEMA,
        "key": stored.key.digest.hex(),
        "scope": stored.key.scope.hex(),
        "namespace": stored.key.namespace.hex(),
        "model": entry.model,
        "created": entry.created_at,
        "expires": stored.expires_at,  # when the source tier would drop it
        **usage_fields(entry.usage),
        "tags": list(entry.tags),
        "value": entry.value,
    }
    if stored.semantic is not None:
        partition, text = stored.semantic
        row["semantic"] = {"partition": partition.hex(), "text": text}
    try:
        return orjson.dumps(row, default=_to_jsonable)
    except TypeError as exc:
        raise CodecError(f"cannot export entry {stored.key.hex[:12]}: {exc}") from exc


# ---------------------------------------------------------------------------- import
def import_entries(
    cache: Cache, source: IO[bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> ImportReport:
    lines = read_lines(source, max_line_bytes)
    first = next(lines, None)
    if first is None:
        raise ExportFileError("the file is empty: not an llmcache export")
    report = ImportReport(embedding_model=read_header(first[1]))
    batch: list[StoredEntry] = []
    held = 0  # bytes of the lines in the batch
    for number, line in lines:
        if line is None:
            report.reject(number, f"line longer than {max_line_bytes} bytes")
            continue
        if not line.strip():
            continue
        try:
            stored = decode_row(line, now=cache.clock())
        except CodecError as exc:
            report.reject(number, str(exc))
            continue
        assert stored.entry is not None
        if stored.entry.is_expired(cache.clock()):
            report.expired += 1
            continue
        # The bound a store checks: the entry's stored form, not the line (which adds the
        # key's digests, and with a semantic export the embedded text).
        size = len(encode(stored.entry))
        if size > cache.policy.max_entry_bytes:
            report.reject(number, f"entry larger than max_entry_bytes ({size} bytes)")
            continue
        batch.append(stored)
        held += stored.size
        if len(batch) >= IMPORT_BATCH or held >= IMPORT_BATCH_BYTES:
            report.imported += _put(cache, batch)
            batch, held = [], 0
    if batch:
        report.imported += _put(cache, batch)
    return report


def _put(cache: Cache, batch: list[StoredEntry]) -> int:
    outcome = cache.put_entries(batch)
    if outcome.failed:
        raise TierError(
            f"import stopped: tier(s) {', '.join(outcome.failed)} could not be written (see "
            "the logged error); entries imported so far stay, run it again once they are back"
        )
    return outcome.stored


def read_lines(source: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) pairs; the line is None when longer than ``limit`` bytes (the rest
    of it is read and dropped in bounded chunks, never held)."""
    number = 0
    while True:
        line = source.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := source.readline(64 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, line


def read_header(line: bytes | None) -> str | None:
    """Check the header line; returns the exporter's embedding model (or None)."""
    try:
        doc = orjson.loads(line) if line is not None else None
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise ExportFileError(
            'line 1 is not an llmcache export header ({"format": "llmcache-export", ...}); '
            "make the file with `llmcache export`"
        )
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise ExportFileError("line 1: the export header's 'version' is not a positive integer")
    if version > FORMAT_VERSION:
        raise ExportFileError(
            f"the file is export format version {version}, written by a newer llmcache; this "
            f"one reads version {FORMAT_VERSION}: upgrade llmcache"
        )
    model = doc.get("embedding_model")
    if model is not None and type(model) is not str:
        raise ExportFileError("line 1: the export header's 'embedding_model' is not a string")
    return model


def _digest(doc: dict[str, Any], name: str, size: int) -> bytes:
    value = doc.get(name)
    if type(value) is not str or len(value) != size * 2:
        raise CodecError(f"field {name!r} is not {size * 2} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CodecError(f"field {name!r} is not {size * 2} hex digits") from None


def decode_row(line: bytes, *, now: float) -> StoredEntry:
    """One export line as an entry to store, or CodecError naming what is wrong (``now``:
    the importing cache's clock, which an expiry may not be more than MAX_TTL after)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise CodecError("not a JSON object")
    entry = from_doc(doc, "entry")
    if len(entry.tags) > MAX_TAGS or not all(0 < len(t) <= MAX_LABEL_CHARS for t in entry.tags):
        raise CodecError(
            f"field 'tags' must hold at most {MAX_TAGS} strings of 1 to {MAX_LABEL_CHARS} chars"
        )
    if len(entry.model) > MAX_LABEL_CHARS:
        raise CodecError(f"field 'model' is longer than {MAX_LABEL_CHARS} chars")
    if entry.expires_at is not None:
        if entry.expires_at < entry.created_at:
            raise CodecError("field 'expires' is before 'created'")
        # The same bound as a TTL given in code: a farther expiry overflows Redis's PX (the
        # whole import stopped on a tier error) and MySQL's columns; null means no expiry.
        if not entry.expires_at - now <= MAX_TTL:  # also inf and nan
            raise CodecError(
                f"field 'expires' is more than {MAX_TTL:.0f} seconds (100 years) from now; "
                "null means no expiry"
            )
    key = CacheKey(
        _digest(doc, "key", 32),
        _digest(doc, "scope", 16),
        label_digest("model", entry.model),
        _digest(doc, "namespace", 16),
    )
    semantic = doc.get("semantic")
    found: tuple[bytes, str] | None = None
    if semantic is not None:
        if type(semantic) is not dict:
            raise CodecError("field 'semantic' is not an object")
        text = semantic.get("text")
        if type(text) is not str or not text or len(text) > MAX_TEXT_CHARS:
            raise CodecError(f"field 'semantic.text' is not a string of 1 to {MAX_TEXT_CHARS}")
        found = (_digest(semantic, "partition", 16), text)
    return StoredEntry(key, entry, len(line), entry.expires_at, "import", None, found)
