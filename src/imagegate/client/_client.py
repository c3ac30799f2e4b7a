"""A small synchronous client for the imagegate (and Apiframe v2) HTTP API.

    from imagegate.client import Client

    with Client("http://127.0.0.1:8000", api_key="ig_test_…") as client:
        job_id = client.generate("flux-2-pro", "a lighthouse", fields={"fluxParams": {"seed": 7}})
        job = client.wait(job_id)
        print(job["result"]["images"])

Errors come back as ``ApiError`` with the HTTP status and the server's ``error``/``details``.
``generate`` sends an ``Idempotency-Key`` (a fresh UUID unless given), so retrying a call whose
answer was lost cannot create a second job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

__all__ = ["TERMINAL", "ApiError", "Client"]

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class ApiError(Exception):
    """The gateway answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("error") if isinstance(body, dict) else str(body)
        details = body.get("details") if isinstance(body, dict) else None
        text = f"HTTP {status}: {message}"
        if details:
            text += " " + "; ".join(f"{k}: {', '.join(v)}" for k, v in details.items())
        super().__init__(text)


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: Any = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx2.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        fields: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
    ) -> str:
        """Queue a job; returns its id. ``fields`` adds body fields, e.g. the params object:
        ``{"fluxParams": {"seed": 7}}``."""
        body: dict[str, Any] = {"model": model, "prompt": prompt, **(fields or {})}
        if webhook_url:
            body["webhookUrl"] = webhook_url
        if webhook_events:
            body["webhookEvents"] = webhook_events
        key = idempotency_key or str(uuid.uuid4())
        accepted = self._call(
            "POST", "/v2/images/generate", json=body, headers={"Idempotency-Key": key}
        )
        return str(accepted["jobId"])

    def action(
        self,
        action: str,
        parent_job_id: str,
        *,
        fields: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """A Midjourney follow-up as a new job; returns its id.

        ``action`` is ``upsample``, ``variation``, ``inpaint``, ``outpaint`` or ``pan``;
        ``fields`` adds its own fields: ``{"index": 2}``, ``{"zoomRatio": 2}``, ….
        """
        body = {"action": action, "parentJobId": parent_job_id, **(fields or {})}
        key = idempotency_key or str(uuid.uuid4())
        accepted = self._call(
            "POST", "/v2/images/midjourney/action", json=body, headers={"Idempotency-Key": key}
        )
        return str(accepted["jobId"])

    def upload(self, data: bytes, filename: str = "image") -> dict[str, Any]:
        """Store an input image; the answer's ``url`` can be passed as an input image."""
        result: dict[str, Any] = self._call(
            "POST", "/v2/uploads", files={"file": (filename, data, "application/octet-stream")}
        )
        return result

    def webhooks(self, job_id: str) -> dict[str, Any]:
        """The job's webhook deliveries and their attempts."""
        result: dict[str, Any] = self._call("GET", f"/v2/jobs/{job_id}/webhooks")
        return result

    def redeliver(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v2/jobs/{job_id}/webhooks/redeliver")
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v2/jobs/{job_id}")
        return result

    def jobs(self, **query: Any) -> dict[str, Any]:
        params = {k: v for k, v in query.items() if v is not None}
        result: dict[str, Any] = self._call("GET", "/v2/jobs", params=params)
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v2/jobs/{job_id}/cancel")
        return result

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v2/me")
        return result

    def models(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v2/models")["models"]
        return result

    def download(self, url: str) -> bytes:
        response = self._http.get(url)
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text)
        return response.content

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        interval: float = 1.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job finishes (backing off ×1.5 up to 5 s); raises ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)
