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
