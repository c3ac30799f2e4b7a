"""jobs.outputs holds typed output records (snake_case), no longer the camelCase wire shape

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Each element of ``jobs.outputs`` was ``{"key", "contentType", "byteSize", "width", "height",
"sha256"}`` plus ``"grid": true`` on a Midjourney grid. It becomes ``{"key", "content_type",
"byte_size", "width", "height", "sha256", "grid"}`` with ``grid`` always present. Downgrade writes
the old shape back exactly (``grid`` only where true). Both directions leave an element already in
the target shape as it is, so a half-converted table (an interrupted run) converts cleanly.

The conversion is written out here rather than imported, so this revision keeps meaning what it
meant when the application's record type changes again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 500

_RENAMED = {"contentType": "content_type", "byteSize": "byte_size"}

Record = dict[str, Any]


def to_typed(record: Record) -> Record:
    """A camelCase record in the shape of ``OutputRecord``."""
    converted = {_RENAMED.get(name, name): value for name, value in record.items()}
    converted["grid"] = bool(converted.get("grid", False))
    return converted


def to_wire_shaped(record: Record) -> Record:
    """A typed record back in the camelCase shape revision 0002 stored."""
    back = {old: new for new, old in _RENAMED.items()}
    converted = {back.get(name, name): value for name, value in record.items() if name != "grid"}
    if record.get("grid"):
        converted["grid"] = True
    return converted


def _rewrite(convert: Callable[[Record], Record]) -> None:
    """Convert every job's outputs, a batch of rows at a time in primary-key order."""
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String(36)),
        sa.column("outputs", sa.JSON().with_variant(JSONB(), "postgresql")),
    )
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.outputs)
            .where(jobs.c.id > last, jobs.c.outputs.is_not(None))
            .order_by(jobs.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for job_id, outputs in rows:
            if isinstance(outputs, list):
                converted = [convert(item) if isinstance(item, dict) else item for item in outputs]
                if converted != outputs:
                    conn.execute(
                        sa.update(jobs).where(jobs.c.id == job_id).values(outputs=converted)
                    )
        last = rows[-1][0]


def upgrade() -> None:
    _rewrite(to_typed)


def downgrade() -> None:
    _rewrite(to_wire_shaped)
