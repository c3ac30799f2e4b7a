"""A job row is read by position: ``JobRow``'s fields are the ``jobs`` table's columns, in order."""

from __future__ import annotations

import dataclasses

from imagegate.store.jobs import JobRow
from imagegate.store.tables import jobs


def test_job_rows_fields_are_the_jobs_columns_in_the_tables_order() -> None:
    assert [field.name for field in dataclasses.fields(JobRow)] == list(jobs.c.keys())
