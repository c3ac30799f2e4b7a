"""Chaos: workers, API processes and the database itself are SIGKILLed at random moments while
jobs with webhooks go through; afterwards every invariant holds.

The gateway runs as 2 API and 3 worker processes on a PostgreSQL server of the test's own,
against the fake OpenAI (a paid, synchronous vendor whose every call is counted by job). Jobs
keep coming in, a few a second, from before the first kill until after the last one (and at
least ``MIN_JOBS``); each vendor call takes a second, so every kill lands while several jobs are
in flight, without a backlog of hundreds competing with the restarts for the CPU. A seeded
random schedule SIGKILLs a worker or an API process and starts it again, and twice SIGKILLs
PostgreSQL (the postmaster and its backends) and starts it again.
Then every job ends exactly once, none stays QUEUED/PROCESSING, no upstream answer is bought
twice (a call cut off by a crash is resubmitted at most once, counted on the job), every final
webhook reaches the receiver under one delivery id, the ledger balances, and no process died
on its own. The seed is in the failure message, so a failing schedule can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from imagegate.testing.invariants import WebhookReceiver, check_invariants
from tests.acceptance.cluster import (
    MODEL,
    Cluster,
    CountingVendor,
    create_live_key,
    serving_in_thread,
    submit_jobs,
    wait_until_settled,
)
from tests.acceptance.conftest import wait_until_healthy
from tests.private_postgres import PrivatePostgres, private_postgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

MIN_JOBS = 100
PROCESS_KILLS = 8
DATABASE_KILLS = 2


async def _chaos(cluster: Cluster, server: PrivatePostgres, rng: random.Random) -> list[str]:
    """Kill and restart processes, and twice the database; what was killed, in order."""
    events = ["process"] * PROCESS_KILLS + ["database"] * DATABASE_KILLS
    rng.shuffle(events)
    done: list[str] = []
    for event in events:
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        if event == "database":
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await asyncio.to_thread(server.start)
            done.append("database")
        else:
            name = rng.choice(sorted(cluster.nodes))
            await asyncio.to_thread(cluster.kill, name)
            await asyncio.to_thread(cluster.restart, name)
            done.append(name)
    return done


async def _under_chaos(
    cluster: Cluster, server: PrivatePostgres, rng: random.Random, key: str, webhook_url: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """Submit jobs in small batches from before the first kill until after the last one; each
    accepted job's id and prompt, and what was killed."""
    chaos = asyncio.create_task(_chaos(cluster, server, rng))
    prompts: list[tuple[str, str]] = []
    batch = 0
    while not chaos.done() or len(prompts) < MIN_JOBS:
        batch += 1
        prompt = f"chaos-{batch}"
        accepted = await submit_jobs(
            [api.base_url for api in cluster.apis], key, 4, webhook_url, prompt=prompt
        )
        prompts += [(job_id, f"{prompt} {i}") for i, job_id in enumerate(accepted)]
        await asyncio.sleep(1.0)
    return prompts, await chaos


def test_random_kills_of_processes_and_database_lose_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("IMAGEGATE_CHAOS_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    vendor = CountingVendor(delay=1.0)
    receiver = WebhookReceiver()
    with (
        private_postgres() as server,
        serving_in_thread(vendor) as vendor_url,
        receiver.running(),
    ):
        database_url = server.create_database()
        providers = vendor.provider(vendor_url)
        providers["openai"]["max_concurrency"] = 256
        cluster = Cluster(
            tmp_path,
            database_url,
            routes={MODEL: ["openai:gpt-image-1.5"]},
            providers=providers,
            IMAGEGATE_LEASE_SECONDS="3",
            IMAGEGATE_POLL_INTERVAL_SECONDS="0.2",
            IMAGEGATE_SHUTDOWN_GRACE_SECONDS="1",
            IMAGEGATE_OUTAGE_BACKOFF_SECONDS="0.2",
            IMAGEGATE_OUTAGE_BACKOFF_CAP_SECONDS="1",
        )
        try:
            apis = [cluster.start_api(f"api-{n + 1}", wait=False) for n in range(2)]
            for n in range(3):
                cluster.start_worker(f"worker-{n + 1}")
            for api in apis:
                wait_until_healthy(api.base_url, api.process)
            for n in range(3):
                cluster.wait_until_working(f"worker-{n + 1}")
            key = asyncio.run(create_live_key(database_url, credits=1_000_000))

            prompts, killed = asyncio.run(_under_chaos(cluster, server, rng, key, receiver.url))
            accepted = [job_id for job_id, _ in prompts]
            asyncio.run(wait_until_settled(database_url, timeout=240))
            died = [n.name for n in cluster.nodes.values() if n.process.poll() is not None]
            assert died == [], f"seed {seed}: died on their own: {died}"
            tally = asyncio.run(
                check_invariants(
                    database_url,
                    expected_jobs=accepted,
                    upstream_calls={job_id: vendor.calls[prompt] for job_id, prompt in prompts},
                    webhooks=receiver.by_job(),
                    redeliveries_allowed=True,
                )
            )
            assert len(set(accepted)) == len(accepted) >= MIN_JOBS
            assert tally.total == len(accepted)
            assert tally.by_status["COMPLETED"] >= len(accepted) * 0.95, (
                tally.by_status,
                tally.not_completed,
            )
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, killed {locals().get('killed')}: {exc}") from exc
        finally:
            cluster.close()
