"""The dataset alone: determinism, growth, revisions, and the since index against brute force."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from restlake.demoapi.dataset import BLOCK, Dataset, DatasetConfig
from restlake.demoapi.timestamps import http_date, iso_z, parse_http_date, parse_iso

CFG = DatasetConfig(seed=11, initial_records=BLOCK * 3 + 17, growth_per_tick=40, update_fraction=0.3)


def _expected_since(ds: Dataset, since: str) -> list[tuple[str, int]]:
    """Brute force over the full snapshot: (updated_at, id) of every record at or after ``since``."""
    since_s = datetime.fromisoformat(since.replace("Z", "+00:00"))
    rows = []
    for rec in ds.snapshot():
        if datetime.fromisoformat(rec["updated_at"].replace("Z", "+00:00")) >= since_s:
            rows.append((rec["updated_at"], rec["id"]))
    return sorted(rows)


def test_same_config_same_records_and_seed_matters() -> None:
    a, b = Dataset(CFG), Dataset(CFG)
    a.advance(3)
    b.advance(3)
    assert list(a.snapshot()) == list(b.snapshot())
    other = Dataset(CFG.model_copy(update={"seed": 12}))
    other.advance(3)
    assert [r["name"] for r in other.snapshot()] != [r["name"] for r in a.snapshot()]


def test_record_shape() -> None:
    rec = Dataset(CFG).record(5)
    assert set(rec) == {"id", "created_at", "updated_at", "name", "status", "amount", "tags", "owner"}
    assert rec["id"] == 5
    assert rec["updated_at"].endswith("Z") and rec["created_at"] == rec["updated_at"]
    assert rec["status"] in {"open", "pending", "closed", "archived"}
    assert isinstance(rec["amount"], float) and isinstance(rec["tags"], list)
    assert rec["owner"]["login"].startswith("user-")
    with pytest.raises(IndexError):
        Dataset(CFG).record(CFG.initial_records + 1)


def test_record_json_is_the_record_serialised() -> None:
    ds = Dataset(CFG)
    ds.advance(2)
    ids = range(1, ds.total + 1)
    assert ds.records_json(ids) == json.dumps(ds.records(ids), separators=(",", ":"))
    assert json.loads(ds.records_json(ids)) == list(ds.snapshot())
    assert ds.records_json([]) == "[]"


def test_tick_appends_and_revises_a_seeded_share() -> None:
    ds = Dataset(CFG)
    before = {r["id"]: r for r in ds.snapshot()}
    ds.advance(1)
    after = {r["id"]: r for r in ds.snapshot()}
    n0 = CFG.initial_records
    assert ds.total == n0 + 40 and sorted(after) == list(range(1, n0 + 41))
    changed = {i for i in before if after[i] != before[i]}
    # round(0.3 * n0) ids were revised, and exactly those changed.
    assert len(changed) == round(0.3 * n0) == ds.updated_last_tick
    assert changed == set(ds.updated_ids_at(1))
    for i in changed:
        assert after[i]["updated_at"] > before[i]["updated_at"]
        assert after[i]["created_at"] == before[i]["created_at"]
        assert after[i]["name"] == before[i]["name"]
    # New records are newer than every old version.
    newest_old = max(r["updated_at"] for r in before.values())
    assert all(after[i]["created_at"] > newest_old for i in range(n0 + 1, n0 + 41))


def test_snapshot_at_other_tick_replays_without_touching_self() -> None:
    ds = Dataset(CFG)
    ds.advance(4)
    old = list(ds.snapshot(at_tick=2))
    assert ds.tick == 4
    replica = Dataset(CFG)
    replica.advance(2)
    assert old == list(replica.snapshot())
    assert len(old) == CFG.initial_records + 80


def test_updated_at_order_is_strict_across_ticks() -> None:
    ds = Dataset(CFG)
    ds.advance(3)
    order = ds.since_scan(ds.since_start(0), ds.total + 1)
    keys = [(ds.record(i)["updated_at"], i) for i, _ in order]
    assert keys == sorted(keys) and len(keys) == ds.total


@pytest.mark.parametrize(
    "since",
    [
        "1970-01-01T00:00:00Z",
        "2023-12-15T00:00:00Z",  # inside the initial load
        "2024-01-01T00:00:00Z",  # epoch: only revised and new records
        "2024-01-01T00:01:30Z",  # inside tick 2
        "2024-01-01T00:03:00Z",  # end of the clock: nothing
    ],
)
def test_since_index_matches_brute_force(since: str) -> None:
    ds = Dataset(CFG)
    ds.advance(3)
    expected = _expected_since(ds, since)
    since_ms = parse_iso(since)
    assert ds.since_count(since_ms) == len(expected)
    got = ds.since_scan(ds.since_start(since_ms), len(expected) + 5)
    assert [(ds.record(i)["updated_at"], i) for i, _ in got] == expected
    # Seeking to any offset lands on the same record as the full scan.
    for offset in (0, 1, BLOCK - 1, BLOCK, 2 * BLOCK + 3, len(expected) - 1, len(expected)):
        page = ds.since_scan(ds.since_seek(since_ms, offset), 3)
        assert [i for i, _ in page] == [i for _, i in expected[offset : offset + 3]]


def test_since_with_one_second_ticks() -> None:
    # One-second ticks give every record of a tick the same timestamp: the boundary case of the index.
    ds = Dataset(
        DatasetConfig(seed=2, initial_records=300, growth_per_tick=4, update_fraction=0.1, tick_seconds=1)
    )
    ds.advance(5)
    for since in (
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:02Z",
        "2024-01-01T00:00:01.5Z",
        "2024-01-01T00:00:05Z",
    ):
        expected = _expected_since(ds, since)
        got = ds.since_scan(ds.since_start(parse_iso(since)), ds.total)
        assert [i for i, _ in got] == [i for _, i in expected] and ds.since_count(parse_iso(since)) == len(
            expected
        )
    assert (
        len(_expected_since(ds, "2024-01-01T00:00:05Z")) == 4 + 32
    )  # tick 5 only: 4 grown + 10% of the 316 before it


def test_since_boundary_includes_equal_timestamps() -> None:
    ds = Dataset(CFG)
    ds.advance(1)
    target = ds.record(ds.updated_ids_at(1)[5])["updated_at"]
    expected = _expected_since(ds, target)
    assert expected[0][0] == target
    got = [i for i, _ in ds.since_scan(ds.since_start(parse_iso(target)), ds.total)]
    assert got == [i for _, i in expected]
    # A fraction of a second later excludes that second entirely (timestamps have whole seconds).
    later = parse_iso(target) + 1
    assert ds.since_count(later) == len([1 for ts, _ in expected if ts > target])


def test_empty_and_growth_only_datasets() -> None:
    ds = Dataset(DatasetConfig(initial_records=0, growth_per_tick=5, update_fraction=0.5))
    assert ds.total == 0 and list(ds.snapshot()) == []
    assert ds.since_count(0) == 0
    ds.advance(2)
    assert [r["id"] for r in ds.snapshot()] == list(range(1, 11))
    assert ds.updated_last_tick == 3  # half of the 5 that existed before tick 2 is 2.5, rounded half up


def test_timestamp_helpers() -> None:
    for ms in (0, 951_868_799_000, 1_704_067_199_999, 4_102_444_800_000):
        dt = datetime.fromtimestamp(ms // 1000, UTC)
        assert iso_z(ms) == dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert parse_http_date(http_date(ms)) == ms // 1000 * 1000
    assert parse_iso("2024-01-01T00:00:00Z") == 1_704_067_200_000
    assert parse_iso("2024-01-01T01:00:00.250+01:00") == 1_704_067_200_250
    assert parse_iso("2024-01-01T00:00:00") == 1_704_067_200_000
    with pytest.raises(ValueError):
        parse_iso("yesterday")
    assert parse_http_date("not a date") is None
