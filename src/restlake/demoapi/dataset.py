"""The demo API's data: deterministic records that grow and change on a virtual clock.

Time moves in *ticks*. Tick 0 is the initial load (``initial_records`` ids, created over
``initial_span_seconds`` before ``epoch``); every later tick ``t`` appends ``growth_per_tick`` new
ids and revises a seeded sample of ``update_fraction`` of the ids that existed before it.

A record is a pure function of ``(seed, id, revision tick)``; the only state kept is, per id,
the tick of its latest revision (4 bytes an id), and per tick a *segment*: the sorted ids revised
or created at that tick. Timestamps inside a segment are a monotone function of the position, so
``(updated_at, id)`` order equals ``(tick, position)`` order, and a ``since`` query is a seek into
the segment index instead of a scan of every record. Nothing is materialised per page beyond the
page itself.
"""

from __future__ import annotations

import json
import logging
import math
import random
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from restlake.demoapi.hashing import hash3, hash64
from restlake.demoapi.timestamps import iso_z

log = logging.getLogger(__name__)

# Live counts are kept per block of positions so that skipping `offset` records costs
# O(blocks + block size), not O(offset).
BLOCK_BITS = 10
BLOCK = 1 << BLOCK_BITS

# Stream tags keep the hash streams of different purposes independent.
_STATIC = 0x5354
_REVISION = 0x5245
_UPDATES = 0x5550

STATUSES = ("open", "pending", "closed", "archived")
TAGS = ("alpha", "beta", "gamma", "delta", "urgent", "backlog", "billing", "infra")
# Tag lists for every 8-bit mask, built once: choosing tags is then one table lookup per record.
_TAG_SETS = tuple(tuple(tag for bit, tag in enumerate(TAGS) if mask >> bit & 1) for mask in range(256))
_TAG_JSON = tuple(json.dumps(list(tags), separators=(",", ":")) for tags in _TAG_SETS)
_ADJECTIVES = ("amber", "brisk", "calm", "dusty", "eager", "fuzzy", "gentle", "hollow", "icy", "jolly")
_NOUNS = ("anchor", "beacon", "canyon", "delta", "ember", "falcon", "glacier", "harbor", "island", "jungle")

Position = tuple[int, int]
"""(tick, position inside that tick's segment): the key of the ``since`` ordering."""


class DatasetConfig(BaseModel):
    """Everything the data depends on; two datasets with equal configs agree at every tick."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, description="Seed of every derived value (fields, which ids a tick updates).")
    initial_records: int = Field(1000, ge=0, description="Records present at tick 0.")
    growth_per_tick: int = Field(10, ge=0, description="New records appended by each tick.")
    update_fraction: float = Field(
        0.01, ge=0.0, le=1.0, description="Share of the existing records revised by each tick."
    )
    tick_seconds: float = Field(60.0, ge=1.0, description="Virtual time one tick spans.")
    epoch: datetime = Field(
        datetime(2024, 1, 1, tzinfo=UTC), description="Virtual time at the end of tick 0 (the initial load)."
    )
    initial_span_seconds: float = Field(
        30 * 86_400.0, ge=1.0, description="The initial records were created over this long before epoch."
    )

    @field_validator("epoch")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def epoch_ms(self) -> int:
        return int(self.epoch.timestamp()) * 1000


class _Segment:
    """The ids revised or created at one tick, in id order, with per-block live counts.

    An entry is *live* while that tick is still the id's latest revision; later ticks only
    decrement counts, so positions (and the timestamps derived from them) never move.
    """

    __slots__ = ("block_live", "first_ms", "live", "n", "n_updated", "new_lo", "span_ms", "tick", "updated")

    def __init__(
        self, tick: int, updated: array[int], new_lo: int, new_count: int, start_ms: int, length_ms: int
    ) -> None:
        self.tick = tick
        self.updated = updated
        self.n_updated = len(updated)
        self.new_lo = new_lo
        self.n = self.n_updated + new_count
        # Timestamps fill [start + 1 s, start + length): the one-second gap to the previous
        # segment keeps second-truncated updated_at strictly ordered across segments.
        self.first_ms = start_ms + 1000
        self.span_ms = max(0, length_ms - 1000)
        full, rest = divmod(self.n, BLOCK)
        self.block_live = array("l", [BLOCK] * full + ([rest] if rest else []))
        self.live = self.n

    def id_at(self, pos: int) -> int:
        if pos < self.n_updated:
            return self.updated[pos]
        return self.new_lo + pos - self.n_updated

    def pos_of(self, record_id: int) -> int:
        if record_id >= self.new_lo and self.n > self.n_updated:
            return self.n_updated + record_id - self.new_lo
        return bisect_left(self.updated, record_id)

    def ms_at(self, pos: int) -> int:
        return self.first_ms + (pos * self.span_ms) // self.n

    @property
    def end_ms(self) -> int:
        """Exclusive upper bound of the timestamps in this segment (1-second ticks put all at first_ms)."""
        return self.first_ms + max(1, self.span_ms)

    def first_pos_at_or_after(self, threshold_ms: int) -> int:
        """Smallest position whose timestamp is >= threshold_ms (n when none), in O(1)."""
        d = threshold_ms - self.first_ms
        if d <= 0:
            return 0
        if self.span_ms == 0:
            return self.n
        return min(self.n, -(-d * self.n // self.span_ms))


class Dataset:
    """The records at the current tick, plus the index that answers id- and since-ordered pages."""

    def __init__(self, config: DatasetConfig | None = None) -> None:
        self.config = config or DatasetConfig()
        self._epoch_ms = self.config.epoch_ms
        self._tick_ms = round(self.config.tick_seconds * 1000)
        n0 = self.config.initial_records
        # _last_tick[id] = tick of the id's latest revision; index 0 is unused. Zero-filled = tick 0.
        self._last_tick: array[int] = array("I", bytes(4 * (n0 + 1)))
        span_ms = round(self.config.initial_span_seconds * 1000)
        first = _Segment(0, array("I"), 1, n0, self._epoch_ms - span_ms, span_ms)
        self._segments: list[_Segment] = [first]
        self._ends: list[int] = [first.end_ms]
        self.updated_total = 0
        self.updated_last_tick = 0
        self.created_last_tick = 0

    # -- clock ---------------------------------------------------------------------------------

    @property
    def tick(self) -> int:
        return len(self._segments) - 1

    @property
    def total(self) -> int:
        return len(self._last_tick) - 1

    @property
    def now_ms(self) -> int:
        """Virtual time at the end of the current tick: no record is newer than this."""
        return self._epoch_ms + self.tick * self._tick_ms

    def tick_start_ms(self, tick: int) -> int:
        return self._epoch_ms + (tick - 1) * self._tick_ms

    def updated_ids_at(self, tick: int) -> list[int]:
        """The existing ids that ``tick`` revises (sorted); pure function of (config, tick)."""
        if tick < 1:
            return []
        existing = self.config.initial_records + (tick - 1) * self.config.growth_per_tick
        count = math.floor(self.config.update_fraction * existing + 0.5)
        if count == 0:
            return []
        rng = random.Random(hash64(self.config.seed, tick, _UPDATES))
        return sorted(rng.sample(range(1, existing + 1), count))

    def advance(self, ticks: int = 1) -> None:
        """Move the clock forward; costs O(updates + growth) per tick, never O(total)."""
        if ticks < 0:
            raise ValueError("the clock only moves forward")
        for _ in range(ticks):
            self._advance_one()

    def _advance_one(self) -> None:
        t = self.tick + 1
        existing = self.total
        chosen = self.updated_ids_at(t)
        last = self._last_tick
        segments = self._segments
        for record_id in chosen:
            old = segments[last[record_id]]
            old.block_live[old.pos_of(record_id) >> BLOCK_BITS] -= 1
            old.live -= 1
            last[record_id] = t
        growth = self.config.growth_per_tick
        if growth:
            last.extend(array("I", [t]) * growth)
        seg = _Segment(t, array("I", chosen), existing + 1, growth, self.tick_start_ms(t), self._tick_ms)
        segments.append(seg)
        self._ends.append(seg.end_ms)
        self.updated_total += len(chosen)
        self.updated_last_tick = len(chosen)
        self.created_last_tick = growth
        log.debug("dataset tick", extra={"tick": t, "updated": len(chosen), "grown": growth})

    # -- records -------------------------------------------------------------------------------

    def created_tick(self, record_id: int) -> int:
        n0 = self.config.initial_records
        if record_id <= n0:
            return 0
        return -(-(record_id - n0) // self.config.growth_per_tick)

    def updated_at_ms(self, record_id: int) -> int:
        seg = self._segments[self._last_tick[record_id]]
        return seg.ms_at(seg.pos_of(record_id))

    def _fields(self, record_id: int) -> tuple[str, str, int, int]:
        """(created_at, updated_at, static hash, revision hash): everything a record is derived from."""
        if not 1 <= record_id <= self.total:
            raise IndexError(f"no record {record_id} at tick {self.tick}")
        rev = self._last_tick[record_id]
        seg = self._segments[rev]
        updated_at = iso_z(seg.ms_at(seg.pos_of(record_id)))
        created = self.created_tick(record_id)
        if created == rev:
            created_at = updated_at
        else:
            cseg = self._segments[created]
            created_at = iso_z(cseg.ms_at(cseg.pos_of(record_id)))
        seed = self.config.seed
        return (
            created_at,
            updated_at,
            hash3(seed, record_id, _STATIC),
            hash3(seed, record_id, (rev << 16) | _REVISION),
        )

    def record(self, record_id: int) -> dict[str, Any]:
        """The current version of one record. Raises IndexError for ids that do not exist yet."""
        created_at, updated_at, s, r = self._fields(record_id)
        return {
            "id": record_id,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": f"{_ADJECTIVES[s % 10]}-{_NOUNS[(s >> 8) % 10]}-{record_id}",
            "status": STATUSES[r & 3],
            "amount": ((r >> 8) % 10_000_000) / 100,
            "tags": list(_TAG_SETS[(r >> 40) & (r >> 48) & 0xFF]),  # each tag with probability 1/4
            "owner": {"login": f"user-{(s >> 16) % 500:03d}"},
        }

    def record_json(self, record_id: int) -> str:
        """``json.dumps(record(id))`` with compact separators, without building the dict.

        Serving is dominated by per-record cost; every value here is plain ASCII from fixed word
        lists, so no escaping is needed. A test pins it to ``json.loads(...) == record(id)``.
        """
        created_at, updated_at, s, r = self._fields(record_id)
        return (
            f'{{"id":{record_id},"created_at":"{created_at}","updated_at":"{updated_at}",'
            f'"name":"{_ADJECTIVES[s % 10]}-{_NOUNS[(s >> 8) % 10]}-{record_id}",'
            f'"status":"{STATUSES[r & 3]}","amount":{((r >> 8) % 10_000_000) / 100!r},'
            f'"tags":{_TAG_JSON[(r >> 40) & (r >> 48) & 0xFF]},'
            f'"owner":{{"login":"user-{(s >> 16) % 500:03d}"}}}}'
        )

    def records(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        return [self.record(i) for i in ids]

    def records_json(self, ids: Iterable[int]) -> str:
        """The JSON array of the records, as ``json.dumps(records(ids), separators=(",", ":"))``."""
        return "[" + ",".join(map(self.record_json, ids)) + "]"

    def snapshot(self, at_tick: int | None = None) -> Iterator[dict[str, Any]]:
        """Every record, id ascending, as the API serves it at ``at_tick`` (default: now).

        Another tick is computed on a fresh replica, so this dataset is left untouched.
        """
        if at_tick is not None and at_tick < 0:
            raise ValueError("at_tick must be >= 0")
        source = self
        if at_tick is not None and at_tick != self.tick:
            source = Dataset(self.config)
            source.advance(at_tick)
        return (source.record(i) for i in range(1, source.total + 1))

    # -- since index ---------------------------------------------------------------------------

    def since_start(self, since_ms: int) -> Position:
        """First position whose updated_at (whole seconds) is >= since; past-the-end if none."""
        threshold = -(-since_ms // 1000) * 1000
        t = bisect_right(self._ends, threshold)
        if t >= len(self._segments):
            return (len(self._segments), 0)
        return (t, self._segments[t].first_pos_at_or_after(threshold))

    def _is_live(self, seg: _Segment, pos: int) -> bool:
        return self._last_tick[seg.id_at(pos)] == seg.tick

    def _live_before(self, seg: _Segment, pos: int) -> int:
        block = pos >> BLOCK_BITS
        count = sum(seg.block_live[:block])
        for p in range(block << BLOCK_BITS, pos):
            count += self._is_live(seg, p)
        return count

    def since_count(self, since_ms: int) -> int:
        t, pos = self.since_start(since_ms)
        if t >= len(self._segments):
            return 0
        first = self._segments[t]
        return first.live - self._live_before(first, pos) + sum(s.live for s in self._segments[t + 1 :])

    def since_seek(self, since_ms: int, skip: int) -> Position:
        """Position of the live entry ``skip`` places after the since boundary (past-the-end if none)."""
        t, pos = self.since_start(since_ms)
        while t < len(self._segments):
            seg = self._segments[t]
            if pos == 0 and seg.live <= skip:
                skip -= seg.live
            else:
                found, skip = self._seek_in(seg, pos, skip)
                if found is not None:
                    return (t, found)
            t, pos = t + 1, 0
        return (len(self._segments), 0)

    def _seek_in(self, seg: _Segment, pos: int, skip: int) -> tuple[int | None, int]:
        n = seg.n
        while pos < n:
            block = pos >> BLOCK_BITS
            block_end = min((block + 1) << BLOCK_BITS, n)
            if pos == block << BLOCK_BITS and seg.block_live[block] <= skip:
                skip -= seg.block_live[block]
                pos = block_end
                continue
            while pos < block_end:
                if self._is_live(seg, pos):
                    if skip == 0:
                        return pos, 0
                    skip -= 1
                pos += 1
        return None, skip

    def since_scan(self, start: Position, limit: int) -> list[tuple[int, Position]]:
        """Up to ``limit`` live (id, position) pairs in (updated_at, id) order, from ``start`` inclusive."""
        out: list[tuple[int, Position]] = []
        t, pos = start
        last = self._last_tick
        while t < len(self._segments) and len(out) < limit:
            seg = self._segments[t]
            n = seg.n
            while pos < n and len(out) < limit:
                if seg.block_live[pos >> BLOCK_BITS] == 0:
                    pos = ((pos >> BLOCK_BITS) + 1) << BLOCK_BITS  # a fully superseded block
                    continue
                record_id = seg.id_at(pos)
                if last[record_id] == t:
                    out.append((record_id, (t, pos)))
                pos += 1
            t, pos = t + 1, 0
        return out
