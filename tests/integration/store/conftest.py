from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from imagegate.store.db import Database


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A ``Database`` on a fresh migrated SQLite file, disposed after the test."""
    database = Database(sqlite_url)
    yield database
    await database.dispose()
