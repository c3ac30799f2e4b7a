"""A vendor that keeps every call waiting: ``python held_vendor.py`` (run by a test).

An HTTP/1.1 server on 127.0.0.1 speaking just enough of OpenAI's Images API: it prints
``port N`` once listening, ``held N`` as it receives each request (its N-th), and answers
none of them until a line arrives on its stdin; then it answers every request, held or new,
with one small PNG as ``b64_json``. It runs in a process of its own so that the test's count
of the objects its garbage collector tracks holds the gateway's alone.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys

from PIL import Image


def answer() -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(picture, format="PNG")
    body = json.dumps(
        {"created": 0, "data": [{"b64_json": base64.b64encode(picture.getvalue()).decode()}]}
    )
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


async def main() -> None:
    released = asyncio.Event()
    reply = answer()
    held = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal held
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                held += 1
                print(f"held {held}", flush=True)
                await released.wait()
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    released.set()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
