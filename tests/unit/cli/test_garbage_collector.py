"""The gateway's processes keep full garbage collections off their startup objects."""

from __future__ import annotations

import gc

from imagegate.cli.server import GC_YOUNG_THRESHOLD, settle_garbage_collector


def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    threshold = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 10_000  # the modules, the catalog, … of this process
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD > threshold[0]
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
        kept = [[] for _ in range(8 * GC_YOUNG_THRESHOLD)]  # surviving, as a waiting job's do
        gc.callbacks.remove(record)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert len(kept) == 8 * GC_YOUNG_THRESHOLD
    young_in_a_row = longest = 0
    for generation in collected:
        young_in_a_row = young_in_a_row + 1 if generation == 0 else 0
        longest = max(longest, young_in_a_row)
    assert collected.count(0) >= 6
    assert longest <= 3
