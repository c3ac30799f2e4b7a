"""Start ``imagegate serve`` the way the README does and drive it over HTTP to a finished image."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy

pytestmark = pytest.mark.slow


class Served:
    def __init__(self, workdir: Path, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        env = child_env(
            IMAGEGATE_PORT=str(port),
            IMAGEGATE_PUBLIC_BASE_URL=self.base_url,
            IMAGEGATE_SANDBOX_LATENCY_SECONDS="0.6",
            IMAGEGATE_POLL_INTERVAL_SECONDS="0.1",
        )
        self.process = subprocess.Popen(
            [IMAGEGATE, "serve"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def key(self, kind: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.match(rf"{kind} key: (ig_{kind}_\S+)", line)
                if match:
                    return match.group(1)
            time.sleep(0.1)
        raise AssertionError("no key printed:\n" + "".join(self.lines))

    def stop(self) -> None:
        """SIGTERM, then a clean exit: uvicorn finishes shutdown and re-raises the signal."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) in (0, -signal.SIGTERM)
        self._reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        assert any("Application shutdown complete" in line for line in self.lines), self.lines


def test_serve_first_start_prints_keys_and_runs_a_job_to_an_image(tmp_path: Path) -> None:
    served = Served(tmp_path, free_port())
    try:
        test_key = served.key("test")
        live_key = served.key("live")
        wait_until_healthy(served.base_url, served.process)
        headers = {"X-API-Key": test_key}
        with httpx2.Client(base_url=served.base_url, timeout=10) as http:
            me = http.get("/v2/me", headers={"X-API-Key": live_key}).json()
            assert me["team"]["credits"] == 500

            accepted = http.post(
                "/v2/images/generate",
                headers=headers,
                json={
                    "model": "gpt-image-1.5",
                    "prompt": "a lighthouse at dusk",
                    "gptImageParams": {"output_format": "png", "aspect_ratio": "2:3"},
                },
            )
            assert accepted.status_code == 202
            job_id = accepted.json()["jobId"]

            deadline = time.monotonic() + 30
            job = http.get(f"/v2/jobs/{job_id}", headers=headers).json()
            while job["status"] not in ("COMPLETED", "FAILED") and time.monotonic() < deadline:
                time.sleep(0.2)
                job = http.get(f"/v2/jobs/{job_id}", headers=headers).json()

            assert job["status"] == "COMPLETED", job
            image_url = job["result"]["images"][0]
            assert image_url.startswith(served.base_url)
            download = http.get(image_url)
            assert download.status_code == 200
            image = Image.open(io.BytesIO(download.content))
            assert image.format == "PNG"
            assert image.height > image.width
    finally:
        served.stop()

    assert (tmp_path / "data" / "imagegate.db").exists()
    again = Served(tmp_path, free_port())
    try:
        wait_until_healthy(again.base_url, again.process)
        assert not any("key:" in line for line in again.lines), "keys are printed only once"
    finally:
        again.stop()
