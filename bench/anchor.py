"""The anchor: a bare FastAPI app that does the least a submit and a read can do.

``POST /v2/images/generate`` validates the same body as imagegate with a pydantic model and
answers 202 with a new job id; ``GET /v2/jobs/{id}`` answers a small job. It is served the way
``imagegate serve`` serves (uvicorn ``Server.serve`` inside ``asyncio.run``, no access log, no
log config, and the same HTTP protocol class: ``header_deadline_protocol``, which also writes a
ready answer's head and body in one ``send``), so each imagegate throughput is reported as a
share of what this app does on the same machine in the same run.

    python bench/anchor.py --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

from imagegate.api.protocol import header_deadline_protocol


class GptImageParams(BaseModel):
    quality: str = "auto"


class GenerateRequest(BaseModel):
    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1, max_length=4000)
    gptImageParams: GptImageParams | None = None


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v2/images/generate", status_code=202)
    async def generate(body: GenerateRequest) -> dict[str, Any]:
        return {"jobId": str(uuid.uuid4()), "status": "QUEUED", "model": body.model}

    @app.get("/v2/jobs/{job_id}")
    async def job(job_id: uuid.UUID) -> dict[str, Any]:
        return {
            "jobId": str(job_id),
            "status": "COMPLETED",
            "model": "gpt-image-1.5",
            "createdAt": int(time.time()),
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(uvicorn.Server(server_config(args.host, args.port)).serve())


def server_config(host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings as ``imagegate serve`` gives them, its protocol class included."""
    return uvicorn.Config(
        create_app(), host=host, port=port, log_config=None, access_log=False, lifespan="on",
        http=header_deadline_protocol(10.0),
    )  # fmt: skip


if __name__ == "__main__":
    main()
