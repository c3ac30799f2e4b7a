"""Copy every row of one imagegate database into another, empty one, of either engine.

Used by ``imagegate import`` to move an embedded install (SQLite) onto PostgreSQL. Rows go
through the same ``Table`` objects on both sides, so every column type (JSON, output lists,
booleans, big integers) is read by the source engine's rules and written by the target's.
Tables are copied parents first (``metadata.sorted_tables``), in batches, each table in one
target transaction; PostgreSQL's sequences are then moved past the copied ids.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Integer, func, insert, select, text

from imagegate.store.db import Database
from imagegate.store.tables import metadata

__all__ = ["BATCH_ROWS", "NotEmpty", "copy_database"]

BATCH_ROWS = 500


class NotEmpty(RuntimeError):
    """The target database already holds rows: importing into it would mix two installs."""


async def copy_database(
    source: Database, target: Database, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every table's rows from ``source`` into the empty, migrated ``target``.

    Returns the rows copied per table; ``progress(table, rows)`` is called after each batch.
    Raises ``NotEmpty`` (before writing anything) when any target table has a row.
    """
    tables = metadata.sorted_tables
    async with target.read() as conn:
        for table in tables:
            if await conn.scalar(select(func.count()).select_from(table)):
                raise NotEmpty(f"the target database's table {table.name} is not empty")
    copied: dict[str, int] = {}
    for table in tables:
        order = list(table.primary_key.columns) or list(table.columns)
        copied[table.name] = 0
        async with source.read() as reader, target.transaction() as writer:
            result = await reader.stream(select(table).order_by(*order))
            async for batch in result.mappings().partitions(BATCH_ROWS):
                await writer.execute(insert(table), [dict(row) for row in batch])
                copied[table.name] += len(batch)
                if progress is not None:
                    progress(table.name, len(batch))
    if target.is_postgres:
        async with target.transaction() as conn:
            for table in tables:
                for column in table.primary_key.columns:
                    if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                        await conn.execute(
                            text(
                                "SELECT setval(pg_get_serial_sequence(:table, :column), "
                                f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, "
                                "false)"
                            ),
                            {"table": table.name, "column": column.name},
                        )
    return copied
