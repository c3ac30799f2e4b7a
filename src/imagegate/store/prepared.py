"""Statements of the hot paths, run on SQLite's ``sqlite3`` connection without SQLAlchemy's
execution machinery.

A submit runs five to seven statements in the SQLite writer's thread; executing one through
SQLAlchemy's ``Connection`` (execution context, parameter and result processing, the result
object) cost about fourteen times what ``sqlite3`` spends running it, and the writer's thread
holds the one GIL the event loop needs. A statement marked with ``prepared()`` is compiled once
per set of parameter names to its SQL string, with its bind and result processors, and run by
``run()`` straight on the ``sqlite3`` cursor: the same SQL, the same values bound and read, the
errors SQLAlchemy would raise (``IntegrityError`` for a duplicate key).

Only what a store function reads of a result is offered: iteration, ``first()``, ``all()``,
``scalar()``, ``rowcount``; rows are tuples with attribute access and ``_mapping``. A statement
whose execution needs more (Python-side column defaults, expanding ``IN`` parameters) is not
taken, and runs through SQLAlchemy as before; so is everything on PostgreSQL.
"""

from __future__ import annotations

import collections
import operator
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import sqlalchemy.exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

__all__ = ["Result", "prepared", "run"]

S = TypeVar("S", bound=ClauseElement)

_MARKED: set[int] = set()
"""``id()`` of every statement marked: module-level constants, alive as long as the process."""
_KEEP: list[ClauseElement] = []
_CACHE: dict[tuple[int, tuple[str, ...]], _Compiled | None] = {}


def prepared(statement: S) -> S:
    """Mark a statement built once (a module constant) to run below SQLAlchemy on SQLite."""
    _KEEP.append(statement)  # its id() stays its own
    _MARKED.add(id(statement))
    return statement


class _Compiled(NamedTuple):
    sql: str
    values: Callable[[Mapping[str, Any]], list[Any]]
    """The values to bind, in order, from the parameters (processed, the fixed ones added)."""
    row: type[tuple[Any, ...]] | None
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    """The result processors, by column position: only the columns that have one."""


class Result:
    """What store functions read of a result, over rows already fetched."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None


def run(
    raw: sqlite3.Connection, dialect: Dialect, statement: Any, parameters: Any
) -> Result | None:
    """Run a ``prepared()`` statement on ``raw`` (the ``sqlite3`` connection the caller's
    transaction is on); None, having run nothing, for any other statement or parameters."""
    if id(statement) not in _MARKED or not isinstance(parameters, dict):
        return None
    key = (id(statement), tuple(parameters))
    if key not in _CACHE:
        _CACHE[key] = _compile(statement, dialect, key[1])
    compiled = _CACHE[key]
    if compiled is None:
        return None
    values = compiled.values(parameters)
    try:
        cursor = raw.execute(compiled.sql, values)
        rows = cursor.fetchall() if compiled.row is not None else []
    except sqlite3.Error as exc:
        raise sqlalchemy.exc.DBAPIError.instance(compiled.sql, values, exc, sqlite3.Error) from exc
    if compiled.row is not None:
        make, results = compiled.row, compiled.results
        if results:
            rows = [_processed(row, results) for row in rows]
        rows = [make(*row) for row in rows]
    return Result(rows, cursor.rowcount)


def _processed(row: Sequence[Any], results: tuple[tuple[int, Callable[[Any], Any]], ...]) -> Any:
    values = list(row)
    for index, process in results:
        values[index] = process(values[index])
    return values


def _values(
    positions: Sequence[str],
    binds: Sequence[Callable[[Any], Any] | None],
    given: Sequence[str],
    fixed: Mapping[str, Any],
) -> Callable[[Mapping[str, Any]], list[Any]]:
    """What binds the values of a statement compiled for the parameter names ``given``: taken
    by one ``itemgetter`` (the names are known when it is made), then the bind processors of
    the positions that have one; a fixed value is the same on every call."""
    processors = [(index, bind) for index, bind in enumerate(binds) if bind is not None]
    if not positions or any(name not in given for name in positions):

        def take(parameters: Mapping[str, Any]) -> list[Any]:
            values = [parameters[n] if n in parameters else fixed[n] for n in positions]
            for index, process in processors:
                values[index] = process(values[index])
            return values

        return take
    getter = operator.itemgetter(*positions)
    single = len(positions) == 1

    def take_given(parameters: Mapping[str, Any]) -> list[Any]:
        values = [getter(parameters)] if single else list(getter(parameters))
        for index, process in processors:
            values[index] = process(values[index])
        return values

    return take_given


def _compile(statement: Any, dialect: Dialect, names: Sequence[str]) -> _Compiled | None:
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(names))
    if (
        compiled.positiontup is None
        or compiled.post_compile_params
        or compiled.literal_execute_params
        or getattr(compiled, "insert_prefetch", None)
        or getattr(compiled, "update_prefetch", None)
    ):
        return None
    binds = compiled._bind_processors
    fixed = {
        name: bind.value
        for bind, name in compiled.bind_names.items()
        if name not in names and not bind.callable and not bind.required
    }
    if any(name not in names and name not in fixed for name in compiled.positiontup):
        return None
    row: type[tuple[Any, ...]] | None = None
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    returns_rows = (
        isinstance(statement, sqlalchemy.Select)
        or compiled.effective_returning
        or _is_text_select(statement)
    )
    if returns_rows:
        columns = compiled._result_columns
        if columns:
            keys = [column.keyname for column in columns]
            results = tuple(
                column.type._cached_result_processor(dialect, None) for column in columns
            )
        else:  # text(): the names come with the rows
            named = _text_columns(compiled.string)
            if named is None:
                return None
            keys = named
        row = _row_type(keys)
    positions = tuple(compiled.positiontup)
    return _Compiled(
        compiled.string,
        _values(positions, [binds.get(name) for name in positions], names, fixed),
        row,
        tuple((index, p) for index, p in enumerate(results) if p is not None),
    )


def _is_text_select(statement: Any) -> bool:
    if not isinstance(statement, sqlalchemy.TextClause):
        return False
    return str(statement).lstrip()[:6].upper() in ("SELECT", "WITH")


def _text_columns(sql: str) -> list[str] | None:
    """The column names of a plain ``SELECT a, b FROM …``; None for anything fancier."""
    head = sql.strip()
    if not head.upper().startswith("SELECT ") or " FROM " not in head.upper():
        return None
    names = [name.strip() for name in head[7 : head.upper().index(" FROM ")].split(",")]
    return names if all(name.isidentifier() for name in names) else None


def _row_type(keys: list[str]) -> type[tuple[Any, ...]]:
    base = collections.namedtuple("Row", keys, rename=True)  # type: ignore[misc]

    class Row(base):
        """A row: by position, by attribute and by ``_mapping[name]``, as SQLAlchemy's."""

        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(keys, self, strict=True))

    return Row
