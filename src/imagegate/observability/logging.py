"""structlog set-up: readable console lines in development, JSON lines in production.

Standard-library loggers (uvicorn, SQLAlchemy) go through the same pipeline. Three promises hold
in both formats, because a log line is written while the API is serving:

- **Cheap for the event loop.** The calling thread only builds the event (and captures the
  exception being handled); rendering and writing happen on a listener thread behind a bounded
  queue. When the queue is full, records are dropped, never waited for; the number dropped is
  counted (``LogPipeline.dropped``) and reported in the log once there is room again.
- **Bounded.** A traceback names at most ``MAX_FRAMES`` frames per exception (the innermost
  ones, where the error is) and never renders local variables; the whole formatted exception
  is cut to ``MAX_TRACEBACK_CHARS``. The console format prints it under the line; JSON puts it
  in an ``exception`` field.
- **No secrets.** Fields named like a secret (``api_key``, ``authorization``, ``signature``,
  ``password``, ``token`` …) are replaced, at any depth, and the rendered line is scrubbed of
  anything shaped like a secret: imagegate API keys, webhook secrets, ``Bearer`` credentials,
  ``signature=`` in URLs and ``name: value`` pairs whose name is a secret's.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

__all__ = [
    "MAX_FRAMES",
    "MAX_TRACEBACK_CHARS",
    "QUEUE_SIZE",
    "REDACTED",
    "LogPipeline",
    "bounded_traceback",
    "configure_logging",
    "dropped_log_records",
    "flush_logs",
    "redact_fields",
    "scrub",
]

MAX_FRAMES = 12
"""Frames shown per exception in a chain: the innermost ones."""

MAX_TRACEBACK_CHARS = 8000
"""The most characters one formatted exception (its whole chain) takes in a log line."""

MAX_VALUE_CHARS = 4000
"""The most characters any other string field takes (a request body logged by mistake …)."""

QUEUE_SIZE = 10_000
"""Records waiting to be written; beyond this they are dropped and counted."""

REDACTED = "[REDACTED]"

_SECRET_WORD = r"api[-_]?key|secret|passw(?:or)?d|token|signature|authorization|cookie|x-key"
_SECRET_FIELD = re.compile(rf"(?i){_SECRET_WORD}")
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(ig_(?:live|test)_)[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=_-]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)([?&;]signature=)[^&\s\"'\\]+"), rf"\1{REDACTED}"),
    # a password inside a URL: postgresql+psycopg://user:password@host/db
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s\"']*:)[^@\s\"'/]+(@)"), rf"\1{REDACTED}\2"),
    # name: value, name=value, "name": "value", (b'name', b'value'): the name is a secret's
    (
        re.compile(
            rf"(?i)((?:{_SECRET_WORD})[\w-]{{0,24}}+)"
            r"((?:(?:\\?[\"'])*\s*[:=]\s*|(?:\\?[\"'])+\s*,\s*)(?:b?(?:\\?[\"'])+)?)"
            r"(?!\[REDACTED\]|(?:bearer|basic)\s)[^\"'\s,&)}\]\\]+"
        ),
        rf"\1\2{REDACTED}",
    ),
)


def scrub(text: str) -> str:
    """``text`` with everything shaped like a secret replaced by ``[REDACTED]``."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_name(name: object) -> bool:
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return isinstance(name, str) and _SECRET_FIELD.search(name) is not None


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters cut] …\n{text[-half:]}"


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _cut(value, MAX_VALUE_CHARS)
    if depth > 8:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _is_secret_name(key) else _redact_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        if len(value) == 2 and _is_secret_name(value[0]):  # a (name, value) header pair
            return [value[0], REDACTED]
        return [_redact_value(item, depth + 1) for item in value]
    return value


def redact_fields(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Replace the value of every field named like a secret, nested ones included; cut long text.

    The ``exception`` field is left whole: ``bounded_traceback`` already cut it to its own size.
    """
    return {
        key: (
            REDACTED
            if _SECRET_FIELD.search(key)
            else value
            if key == "exception"
            else _redact_value(value)
        )
        for key, value in event_dict.items()
    }


_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def bounded_traceback(exc_info: _ExcInfo | BaseException) -> str:
    """The exception chain as text: innermost ``MAX_FRAMES`` frames each, no locals, capped."""
    error = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
    lines = traceback.TracebackException.from_exception(
        error, limit=-MAX_FRAMES, capture_locals=False
    ).format()
    return _cut("".join(lines).rstrip("\n"), MAX_TRACEBACK_CHARS)


def _capture_exc_info(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Resolve ``exc_info=True`` on the calling thread: the listener thread has no exception."""
    if event_dict.get("exc_info") is True:
        info = sys.exc_info()
        event_dict["exc_info"] = info if info[1] is not None else None
    return event_dict


def _format_exception(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    info = event_dict.pop("exc_info", None)
    if isinstance(info, BaseException) or (isinstance(info, tuple) and info[1] is not None):
        event_dict["exception"] = bounded_traceback(info)
    return event_dict


def _merge_record_context(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Context variables (request id) a standard-library record carried from its thread."""
    context = getattr(event_dict.get("_record"), "imagegate_context", None)
    return {**context, **event_dict} if context else event_dict


def _scrub_line(_logger: WrappedLogger, _name: str, line: str | EventDict) -> str:
    return scrub(line) if isinstance(line, str) else scrub(str(line))


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Put the record on the queue as it is (rendering is the listener's work); never block."""

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self._lock = threading.Lock()
        self.dropped = 0
        self._unreported = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not isinstance(record.msg, dict):  # a standard-library record: keep its context
            record.imagegate_context = structlog.contextvars.get_contextvars()
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self._unreported += 1
            return
        if self._unreported:
            with self._lock:
                count, self._unreported = self._unreported, 0
            notice = logging.LogRecord(
                "imagegate.logging", logging.WARNING, __file__, 0,
                "log.dropped: %d records dropped (log queue full)", (count,), None,
            )  # fmt: skip
            try:
                self.queue.put_nowait(notice)
            except queue.Full:
                with self._lock:
                    self._unreported += count


class _Listener(logging.handlers.QueueListener):
    """Writes queued records on its own thread; its stop marker waits for room in a full queue."""

    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)  # type: ignore[attr-defined]


@dataclass
class LogPipeline:
    """The running pipeline: ``flush`` waits until every queued record is written."""

    records: queue.Queue[logging.LogRecord]
    handler: _DroppingQueueHandler
    listener: _Listener
    running: bool = True

    @property
    def dropped(self) -> int:
        """Records dropped since start because the queue was full."""
        return self.handler.dropped

    def flush(self) -> None:
        self.records.join()

    def close(self) -> None:
        """Write what is queued and stop the listener thread (idempotent)."""
        if self.running:
            self.running = False
            self.listener.stop()


_current: LogPipeline | None = None


def dropped_log_records() -> int:
    """Records the process dropped because its log queue was full (0 before configuration)."""
    return _current.dropped if _current is not None else 0


def flush_logs() -> None:
    """Wait until every record queued so far is written (nothing to do before configuration)."""
    if _current is not None and _current.running:
        _current.flush()


def configure_logging(
    level: str = "INFO",
    json: bool = False,
    *,
    stream: TextIO | None = None,
    queue_size: int = QUEUE_SIZE,
) -> LogPipeline:
    """Send structlog and standard-library logging through one bounded, redacting pipeline.

    Replaces any earlier configuration (its queue is written out first). ``stream`` defaults to
    standard error.
    """
    global _current
    if _current is not None:
        _current.close()
    out = stream if stream is not None else sys.stderr
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            *shared,
            _capture_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a cached module logger keeps the processors it first saw, so a later
        # ``configure`` (another pipeline, ``structlog.testing.capture_logs``) would not reach
        # it. Building the bound logger per call costs microseconds; rendering is off the loop.
        cache_logger_on_first_use=False,
    )
    writer = logging.StreamHandler(out)
    writer.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_merge_record_context, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _format_exception,
                redact_fields,
                renderer,
                _scrub_line,
            ],
        )
    )
    records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=queue_size)
    handler = _DroppingQueueHandler(records)
    listener = _Listener(records, writer)
    listener.start()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    _current = LogPipeline(records, handler, listener)
    return _current


atexit.register(lambda: _current.close() if _current is not None else None)
