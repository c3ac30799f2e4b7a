"""The ``ObjectStore`` port over obstore: one class for the local directory, memory and S3.

obstore's local filesystem keeps no per-object attributes, so there the content type comes from
the key's extension (keys are always written with the right one); S3 and memory keep the
``Content-Type`` given at ``put``.

``put_file`` hands obstore the file's path: obstore reads it from Rust, part by part, and uploads
a file larger than ``PART_BYTES`` to S3 as a multipart upload with at most ``PARTS_IN_FLIGHT``
parts in memory at once.

A put of at most ``IN_PLACE_BYTES`` to a local directory, made while the process has nothing
else to do (``QUIET_PUTS``), is written in place, on the event loop's thread, the way obstore
writes it (``_write_in_place``): obstore runs every local write on its runtime's threads, even
through its blocking ``put``, and a job's answer waits for its image. A worker process writes
every such put in place, busy or not (``busy_puts_in_place``).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore

from imagegate.loop import is_idle
from imagegate.storage.port import ObjectNotFound, StoredObject
from imagegate.storage.signing import UrlSigner

__all__ = [
    "IN_PLACE_BYTES",
    "PARTS_IN_FLIGHT",
    "PART_BYTES",
    "QUIET_PUTS",
    "SETTLE_SECONDS",
    "ObstoreObjectStore",
    "settle",
]

PART_BYTES = 5 * 1024 * 1024
"""Size of a multipart upload's part (S3's smallest allowed, but for the last)."""

PARTS_IN_FLIGHT = 2
"""Parts of one upload sent at once; each is held in memory while it is sent."""

IN_PLACE_BYTES = 256 * 1024
"""The largest put to a local directory that may be written on the calling thread (a directory
and a file created, the bytes written, a rename: 0.1-0.6 ms for 64 KB on the benchmark
machine's ext4), when the event loop has nothing else to do (``QUIET_PUTS``)."""

QUIET_PUTS = 3
"""A small local put is written on the event loop's thread only once this many puts in a row
found the loop with no callback ready to run and no socket ready to read (``loop.is_idle``), as
in a process serving one request at a time. Through obstore the same write costs about twice
the CPU on its runtime's threads and, for a job's answer waiting on it, the wake-ups of those
threads and of the loop again. Under load nearly every put goes through obstore's threads (with
2,000 jobs finishing together, 5-31 of 2,001 were written in place): every put written on the
loop there raised the peak RSS of 2,000 jobs in flight by a quarter (``bench/notes.md``,
litellm, 2026-12-07 00:00-00:05 UTC)."""

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
"""Keys whose file is the key itself under the root (obstore escapes some other characters);
no segment starts with a dot, so none is ``.`` or ``..``."""

SETTLE_SECONDS = 0.05
"""How long ``settle`` leaves the GIL to obstore's threads."""


async def settle() -> None:
    """Let obstore's threads finish handing back the calls just awaited; for a command that
    exits after its last object store call.

    obstore answers an awaited call from a thread of its own (tokio's): it hands the result to
    the loop, then takes the GIL once more on its way out. A process that exits at once could
    finalise Python in between, and Python 3.11 ends a thread asking for the GIL then with
    ``pthread_exit``, which aborts the process from inside Rust (SIGABRT after the command's last
    line: 5-22 runs of ``config check --connect`` in 100 here). Asleep on the loop, the process
    leaves the GIL free for that thread.
    """
    await asyncio.sleep(SETTLE_SECONDS)


_STAGING_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _write_in_place(root: Path, key: str, data: bytes) -> str:
    """Write ``data`` to ``root/key`` as obstore's local store does, and its ETag as obstore
    gives it: to a staging file beside it, then renamed over it. The staging file's name
    (``<name>#<digits>``) is one obstore's listing skips, so one left by a crash is never seen.

    Written with ``os`` calls, its directory made only when the file cannot be created without
    it: a Python file object (``isatty``'s ``ioctl``, a seek, a ``stat``) and a ``mkdir`` that
    finds the directory there cost the loop ~30 µs of its ~80 a put (tmpfs, 2026-12-07)."""
    path = os.path.join(root, key)
    staging = f"{path}#{secrets.randbelow(10**12)}"
    try:
        try:
            fd = os.open(staging, _STAGING_FLAGS, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(staging, _STAGING_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise
    stat = os.stat(path)
    return f'"{stat.st_ino:x}-{stat.st_mtime_ns // 1000:x}-{stat.st_size:x}"'


def _type_from_key(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key)
    return guessed or "application/octet-stream"


class ObstoreObjectStore:
    def __init__(
        self,
        store: Any,
        signer: UrlSigner,
        *,
        keeps_attributes: bool,
        presign: bool = False,
        local_root: Path | None = None,
        busy_puts_in_place: bool = False,
    ) -> None:
        """``local_root``: the directory of a local ``store``, where a small put may be written
        in place (``QUIET_PUTS``).

        ``busy_puts_in_place``: a small local put is written in place even while other work
        waits, as a worker process (``imagegate worker``) writes them. Its event loop serves no
        request: what a put costs it, ~40 µs of CPU for 64 KB (tmpfs), is all the put costs,
        where through obstore the same put cost 145-240 µs of CPU across the process's
        threads and 6-12 context switches (2,000 puts in a row or ten at a time, 2026-12-07),
        the loop's thread waiting for the GIL behind obstore's threads as they hand each put
        back. The loop waits for the directory's file system meanwhile, as obstore's thread
        would (on a network file system, a round trip or more per put). ``serve`` keeps
        ``QUIET_PUTS``: with thousands of jobs answering together, its in-place puts raised the
        in-flight peak RSS by a quarter (``bench/notes.md``, litellm)."""
        self._store = store
        self._signer = signer
        self._keeps_attributes = keeps_attributes
        self._presign = presign
        self._local_root = local_root
        self._busy_puts_in_place = busy_puts_in_place
        self._quiet = 0
        """Small local puts in a row that found the event loop idle."""

    async def keys(self) -> AsyncIterator[str]:
        """Every stored key, in no particular order (``imagegate import`` copies them all)."""
        async for batch in obstore.list(self._store, chunk_size=500):
            for meta in batch:
                yield str(meta["path"])

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        if self._may_write_in_place(key, data):
            assert self._local_root is not None
            etag = _write_in_place(self._local_root, key, data)
            return StoredObject(key, len(data), content_type, etag)
        attributes = {"Content-Type": content_type} if self._keeps_attributes else None
        result = await obstore.put_async(self._store, key, data, attributes=attributes)
        return StoredObject(key, len(data), content_type, result.get("e_tag"))

    def _may_write_in_place(self, key: str, data: bytes) -> bool:
        if self._local_root is None or len(data) > IN_PLACE_BYTES or not _PLAIN_KEY.fullmatch(key):
            return False
        if self._busy_puts_in_place:
            return True
        if not is_idle(asyncio.get_running_loop()):
            self._quiet = 0
            return False
        self._quiet += 1
        return self._quiet > QUIET_PUTS

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        attributes = {"Content-Type": content_type} if self._keeps_attributes else None
        size = path.stat().st_size
        result = await obstore.put_async(
            self._store,
            key,
            path,
            attributes=attributes,
            chunk_size=PART_BYTES,
            max_concurrency=PARTS_IN_FLIGHT,
        )
        return StoredObject(key, size, content_type, result.get("e_tag"))

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            return bytes(await obstore.get_range_async(self._store, key, start=start, end=end))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def head(self, key: str) -> StoredObject:
        try:
            if self._keeps_attributes:
                result = await obstore.get_async(self._store, key, options={"head": True})
                meta, attributes = result.meta, result.attributes
                content_type = str(attributes.get("Content-Type") or _type_from_key(key))
            else:
                meta = await obstore.head_async(self._store, key)
                content_type = _type_from_key(key)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return StoredObject(key, meta["size"], content_type, meta.get("e_tag"))

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, key)

    async def url(self, key: str, expires_in: int) -> str:
        if self._presign:
            return await obstore.sign_async(self._store, "GET", key, timedelta(seconds=expires_in))
        return self._signer.sign(key, expires_in)
