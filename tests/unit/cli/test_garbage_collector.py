"""The gateway's processes keep full garbage collections off their startup objects."""

from __future__ import annotations

import gc

from imagegate.cli.server import GC_YOUNG_THRESHOLD, settle_garbage_collector


def test_startup_objects_are_frozen() -> None:
    threshold = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 10_000  # the modules, the catalog, … of this process
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_every_fourth_collection_is_of_the_middle_generation() -> None:
    """While jobs pile up nearly every young object survives, and a collection of the middle
    generation walks all that the young collections since the one before kept: three young
    generations' worth at most (and its own), so that pause stays short."""
    threshold = gc.get_threshold()
    collected: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    try:
        settle_garbage_collector()
        gc.callbacks.append(record)
        kept = [[] for _ in range(80 * GC_YOUNG_THRESHOLD)]  # surviving, as a waiting job's do
        gc.callbacks.remove(record)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert len(kept) == 80 * GC_YOUNG_THRESHOLD
    young_in_a_row = longest = 0
    for generation in collected:
        young_in_a_row = young_in_a_row + 1 if generation == 0 else 0
        longest = max(longest, young_in_a_row)
    assert collected.count(0) >= 6
    assert longest <= 3


def test_no_collection_walks_more_than_a_few_thousand_objects_while_jobs_pile_up() -> None:
    """Each collection stops the event loop while it walks the generations it collects; with
    objects piling up (jobs waiting on their vendors) none walks more than a few thousand, a
    few milliseconds of the loop (at 10,000 young allocations a middle collection walked
    40,000: 10-20 ms)."""
    threshold = gc.get_threshold()
    walked: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected = range(info["generation"] + 1)
            walked.append(sum(len(gc.get_objects(generation=g)) for g in collected))

    try:
        settle_garbage_collector()
        gc.callbacks.append(record)
        kept = [[] for _ in range(100_000)]  # surviving, as a waiting job's do
        gc.callbacks.remove(record)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert len(kept) == 100_000
    assert len(walked) >= 50
    assert max(walked) <= 6_000
