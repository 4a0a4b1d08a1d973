"""A source's deletion waits for a reconcile under way and stops every later one."""

from __future__ import annotations

import threading

from restlake.operator.deletion_guard import DeletionGuard


def test_a_deletion_waits_for_the_reconcile_under_way_and_later_ones_find_the_source_gone() -> None:
    guard = DeletionGuard()
    order: list[str] = []
    inside, finish = threading.Event(), threading.Event()

    def reconcile() -> None:
        with guard.live("uid-1") as alive:
            assert alive
            inside.set()
            finish.wait(10)
            order.append("topics created")

    def delete() -> None:
        with guard.deleting("uid-1"):
            order.append("topics deleted")

    tick = threading.Thread(target=reconcile)
    tick.start()
    assert inside.wait(10)
    deletion = threading.Thread(target=delete)
    deletion.start()
    deletion.join(0.3)
    assert deletion.is_alive(), "the deletion must wait for the reconcile holding the source"
    finish.set()
    tick.join(10)
    deletion.join(10)
    assert order == ["topics created", "topics deleted"]

    with guard.live("uid-1") as alive:
        assert not alive
    assert guard.gone("uid-1")
    # Another object, even one created again under the same name, has its own UID.
    with guard.live("uid-2") as alive:
        assert alive


def test_only_the_most_recent_deletions_are_remembered() -> None:
    guard = DeletionGuard(remembered=2)
    for uid in ("a", "b", "c"):
        with guard.deleting(uid):
            pass
    assert [guard.gone(uid) for uid in ("a", "b", "c")] == [False, True, True]
