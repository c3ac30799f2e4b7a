"""Live gateways for the SDK tests: ``imagegate serve`` subprocesses on the sandbox.

``gateway`` runs jobs (sandbox latency 0.6 s) and has OpenAI "configured" with a dummy key, so a
live key can reach the credit check without anything being sent upstream. ``stalled`` runs no
workers and admits one queued job per account: jobs stay QUEUED and the second submit gets 429.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import IMAGEGATE, child_env, free_port, wait_until_healthy


class Gateway:
    def __init__(self, workdir: Path, *args: str, **settings: str) -> None:
        self.workdir = workdir
        self.base_url = f"http://127.0.0.1:{free_port()}"
        self.env = child_env(
            IMAGEGATE_PUBLIC_BASE_URL=self.base_url,
            IMAGEGATE_SANDBOX_LATENCY_SECONDS="0.6",
            IMAGEGATE_POLL_INTERVAL_SECONDS="0.1",
            **settings,
        )
        self.log = (workdir / "serve.log").open("w")
        port = self.base_url.rsplit(":", 1)[1]
        self.process = subprocess.Popen(
            [IMAGEGATE, "serve", "--port", port, *args],
            cwd=workdir,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_until_healthy(self.base_url, self.process)
        text = (workdir / "serve.log").read_text()
        self.test_key = _key(text, "test")
        self.live_key = _key(text, "live")

    def cli(self, *args: str) -> str:
        """An operator command against this gateway's database; its stdout."""
        done = subprocess.run(
            [IMAGEGATE, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def _key(text: str, kind: str) -> str:
    match = re.search(rf"{kind} key: (ig_{kind}_\S+)", text)
    assert match, text
    return match.group(1)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    served = Gateway(
        tmp_path_factory.mktemp("gateway"), IMAGEGATE_PROVIDERS__OPENAI__API_KEY="sk-unused"
    )
    yield served
    served.stop()


@pytest.fixture(scope="session")
def stalled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    served = Gateway(
        tmp_path_factory.mktemp("stalled"),
        "--no-workers",
        IMAGEGATE_MAX_QUEUED_JOBS_PER_ACCOUNT="1",
    )
    yield served
    served.stop()


@pytest.fixture(scope="session")
def broke_key(gateway: Gateway) -> str:
    """A live key of a second account, which has no credits."""
    created = re.search(
        r"account (\S+) created",
        gateway.cli("accounts", "create", "broke", "--email", "ops@broke.test"),
    )
    assert created
    return gateway.cli("keys", "create", "--account", created.group(1)).strip().splitlines()[-1]


@pytest.fixture
def refused_url() -> str:
    """A local address where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
