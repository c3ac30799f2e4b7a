"""JSON request bodies, decoded so that no input can fail later than here.

``json.loads`` alone lets through what breaks deeper layers with a 500: nesting thousands of
levels deep (``RecursionError`` in the decoder or in any later walk), integers of thousands of
digits (Python's int/str conversion limit raises ``ValueError`` when they are printed),
``NaN``/``Infinity`` (not JSON; PostgreSQL ``jsonb`` refuses them) and NUL characters
(PostgreSQL ``text`` refuses them, SQLite stores them: the engines would disagree). ``decode_json``
refuses each with a 400 whose ``details`` name the JSON path, so every engine behaves alike.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi import Request

from imagegate.errors import ValidationFailed

__all__ = ["MAX_DEPTH", "MAX_INTEGER_DIGITS", "decode_json", "load_json"]

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; every documented body is under 6."""

MAX_INTEGER_DIGITS = 20
"""Longest integer accepted; every documented integer fits in 64 bits (19 digits and a sign)."""


class _Made(threading.local):
    refused = 0
    """``_Refused`` made so far on this thread."""


_MADE = _Made()


class _Refused:
    """Stands in for a number the decoder met but the API will not accept; says why."""

    __slots__ = ("rule",)

    def __init__(self, rule: str) -> None:
        self.rule = rule
        _MADE.refused += 1


def _integer(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return _Refused(f"is too large a number (more than {MAX_INTEGER_DIGITS} digits)")
    return int(text)


def _float(text: str) -> float | _Refused:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Refused("is too large a number")
    return value


def _constant(name: str) -> _Refused:
    return _Refused(f"must be a finite number ({name} is not JSON)")


def _path(parts: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in parts) or "body"


def _unstorable(text: str) -> str | None:
    """What in a string (value or field name) no engine stores alike as text, if anything."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "an unpaired surrogate (\\ud800-\\udfff)"
    return None


def _problems(document: Any) -> dict[str, list[str]]:
    """Every refused number, unstorable string and over-deep value, by JSON path."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, parts = stack.pop()
        rule: str | None = None
        if isinstance(value, _Refused):
            rule = value.rule
        elif isinstance(value, str):
            found = _unstorable(value)
            rule = None if found is None else f"must not contain {found}"
        elif isinstance(value, dict | list) and len(parts) >= MAX_DEPTH:
            rule = f"nests deeper than {MAX_DEPTH} levels"
        elif isinstance(value, dict):
            for key, item in value.items():
                found = _unstorable(key)
                if found is not None:
                    problems.setdefault(_path(parts), []).append(f"has a field name with {found}")
                else:
                    stack.append((item, (*parts, key)))
        elif isinstance(value, list):
            stack.extend((item, (*parts, index)) for index, item in enumerate(value))
        if rule is not None:
            problems.setdefault(_path(parts), []).append(rule)
    return problems


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_float, parse_constant=_constant)
"""Made once: ``json.loads`` given these hooks builds a new decoder per call, which cost most
of a submit's decoding."""


def _text(raw: bytes) -> str:
    """The body as text, as ``json.loads`` would decode it."""
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return text


def _plain(text: str, refused: bool) -> bool:
    """Whether a document decoded from ``text`` can have no problem, so that it need not be
    walked: no number refused, ASCII with no ``\\u`` escape (so no NUL and no surrogate), and
    fewer brackets in all than ``MAX_DEPTH``. Most bodies are; the walk costs ~10 µs."""
    return (
        not refused
        and text.isascii()
        and "\\u" not in text
        and text.count("{") + text.count("[") < MAX_DEPTH
    )


def load_json(raw: bytes) -> Any:
    """Decode a request body; ``ValidationFailed`` (400) naming each offending path if refused."""
    if not raw:
        raise ValidationFailed.field("body", "is required (a JSON object)")
    try:
        text = _text(raw)
        made = _MADE.refused
        document = _DECODER.decode(text)
    except RecursionError:
        raise ValidationFailed.field("body", f"nests deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(
            {"body": [f"is not valid JSON: {exc}"]}, message="Malformed JSON body"
        ) from None
    if _plain(text, refused=_MADE.refused != made):
        return document
    problems = _problems(document)
    if problems:
        raise ValidationFailed(problems)
    return document


LARGE_BODY_BYTES = 256 * 1024
"""A body larger than this is decoded on a thread (~4 ms a megabyte here): an inpaint mask may
make a Midjourney action's body 12 MB, ~45 ms of decoding that the event loop would wait for.
Submits are a few kilobytes and stay on the loop, where a thread's hop would cost more."""


async def decode_json(request: Request) -> Any:
    """The request body as JSON; 400 naming the problem when it is not acceptable JSON."""
    raw = await request.body()
    if len(raw) > LARGE_BODY_BYTES:
        return await asyncio.to_thread(load_json, raw)
    return load_json(raw)
