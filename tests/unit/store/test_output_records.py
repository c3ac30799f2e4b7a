"""An output record's JSON, the shape ``jobs.outputs`` stores: every field of the record, in its
order, with its value, and read back as the same record."""

from __future__ import annotations

import dataclasses
import json

import pytest

from imagegate.store.outputs import OutputRecord


@pytest.mark.parametrize("grid", [False, True])
def test_a_record_is_stored_as_its_fields_and_read_back_as_itself(grid: bool) -> None:
    record = OutputRecord("outputs/b2/job-1.png", "image/png", 65047, 147, 99, "9d58" * 16, grid)
    stored = record.to_json()
    assert list(stored) == [field.name for field in dataclasses.fields(OutputRecord)]
    assert stored == dataclasses.asdict(record)
    assert json.dumps(stored) == json.dumps(dataclasses.asdict(record))  # the same column text
    assert OutputRecord.from_json(json.loads(json.dumps(stored))) == record
