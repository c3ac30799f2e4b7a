"""What the queue's PostgreSQL writes send, seen from the database's body threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.db import Database


@dataclass
class Sent:
    """The statements the body threads ran, each with whether it committed by itself
    (autocommit: no BEGIN before it, no COMMIT after), and the COMMITs."""

    statements: list[tuple[str, bool]] = field(default_factory=list)
    commits: int = 0

    def alone(self, fragment: str) -> list[bool]:
        """For each statement containing ``fragment``: whether it committed by itself."""
        return [alone for statement, alone in self.statements if fragment in statement]


@contextlib.contextmanager
def statements_sent(db: Database) -> Iterator[Sent]:
    """Record what ``db``'s body threads (``ThreadedBodies``) send while the block runs."""
    engine = db._bodies()._engine
    sent = Sent()

    def on_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.statements.append((statement, conn.connection.dbapi_connection.autocommit))

    def on_commit(_conn: Any) -> None:
        sent.commits += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


async def whole_reads_of_jobs(conn: AsyncConnection) -> int:
    """Sequential scans of ``jobs`` this connection's backend made and has not yet reported:
    on PostgreSQL 15 those of its earlier transactions too (they are reported at most once a
    second), so a test reads the difference around what it measures."""
    scans = await conn.scalar(
        text("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'jobs'")
    )
    return int(scans)
