"""What must hold after any scenario, however many processes crashed: one checker for every test.

``check_invariants(database_url, ...)`` reads the database a gateway ran on and collects every
violation of these rules, then raises ``InvariantsBroken`` listing them all (or returns a
``Tally`` of the jobs by status):

- **every job ends, exactly once**: no job is left QUEUED or PROCESSING or holding a lease, and
  each has exactly one final event (``completed``, ``failed`` or ``cancelled``) matching its
  status;
- **no upstream answer is bought twice**: given the calls the (fake) upstream received per job,
  a job was called at most once, plus once more for each call a crash cut off before its answer
  arrived (``interrupted_calls``, the documented resubmit-once policy), and a completed job was
  called at least once;
- **every final webhook is delivered, once**: each job with a webhook URL has exactly one final
  delivery, ``delivered``; given what a receiver saw (``WebhookReceiver``), it received that
  job's final event under exactly one ``webhook-id``, and, unless ``redeliveries_allowed`` (a
  sender killed between sending and recording may send again, with the same id), exactly once;
- **the ledger balances**: each account's credits equal the sum of its ledger entries and its
  last ``balance_after``; each charged job has one reservation, then one capture if it completed
  (after a refund of what it did not deliver, if any) or one refund of the whole amount if it
  did not; a test key's job has no entry;
- **admission counts what is there**: the queued and processing counts that triggers keep per
  account (on SQLite ``account_job_counts``; on PostgreSQL the sums of its rows in
  ``account_job_count_slots``) equal the jobs' statuses.

``WebhookReceiver`` is a real HTTP server that answers 200 to every POST and records
``(jobId, event, webhook-id)``; ``sandbox_submits`` reads the sandbox provider's ``submit_log``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select, text

from imagegate.store.db import Database
from imagegate.store.tables import accounts, job_events, jobs, ledger_entries, webhook_deliveries

__all__ = [
    "InvariantsBroken",
    "Tally",
    "WebhookReceiver",
    "check_invariants",
    "sandbox_submits",
]

_FINAL = {"COMPLETED": "completed", "FAILED": "failed", "CANCELLED": "cancelled"}
_FINAL_WEBHOOKS = {"completed", "failed"}
_SHOWN = 10
_KEPT_COUNTS = {
    "sqlite": text("SELECT account_id, queued, processing FROM account_job_counts"),
    "postgresql": text(
        "SELECT account_id, sum(queued), sum(processing) FROM account_job_count_slots"
        " GROUP BY account_id"
    ),
}


class InvariantsBroken(AssertionError):
    """One or more invariants do not hold; the message lists every violation found."""


@dataclass
class Tally:
    """The jobs checked, by final status; the jobs that did not complete, by status and reason."""

    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    not_completed: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that answers 200 and records every delivery."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.received.append(
                        (body["jobId"], body["event"], self.headers["webhook-id"])
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    @contextlib.contextmanager
    def running(self) -> Iterator[WebhookReceiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

    def by_job(self) -> dict[str, list[tuple[str, str]]]:
        """Every delivery received, as ``(event, webhook-id)`` per job id."""
        seen: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        with self._lock:
            for job_id, event, delivery_id in self.received:
                seen[job_id].append((event, delivery_id))
        return dict(seen)


def sandbox_submits(submit_log: Path) -> collections.Counter[str]:
    """Submits per job id, from the sandbox provider's ``submit_log`` (none: no file)."""
    if not submit_log.exists():
        return collections.Counter()
    return collections.Counter(line.split()[0] for line in submit_log.read_text().splitlines())


async def check_invariants(
    database_url: str,
    *,
    expected_jobs: Collection[str] | None = None,
    upstream_calls: Mapping[str, int] | None = None,
    webhooks: Mapping[str, list[tuple[str, str]]] | None = None,
    redeliveries_allowed: bool = False,
) -> Tally:
    """Check every invariant on the database at ``database_url``; raise ``InvariantsBroken``.

    ``expected_jobs``: ids that must exist (every accepted submit). ``upstream_calls``: the
    calls the upstream received per job id. ``webhooks``: what a ``WebhookReceiver`` saw.
    """
    db = Database(database_url)
    try:
        async with db.read() as conn:
            job_rows = (await conn.execute(select(jobs))).mappings().all()
            finals = (
                await conn.execute(
                    select(job_events.c.job_id, job_events.c.kind).where(
                        job_events.c.kind.in_(list(_FINAL.values()))
                    )
                )
            ).all()
            deliveries = (
                await conn.execute(
                    select(
                        webhook_deliveries.c.id,
                        webhook_deliveries.c.job_id,
                        webhook_deliveries.c.event,
                        webhook_deliveries.c.status,
                    ).where(webhook_deliveries.c.event.in_(list(_FINAL_WEBHOOKS)))
                )
            ).all()
            ledger = (
                await conn.execute(
                    select(
                        ledger_entries.c.account_id,
                        ledger_entries.c.job_id,
                        ledger_entries.c.kind,
                        ledger_entries.c.amount,
                        ledger_entries.c.balance_after,
                    ).order_by(ledger_entries.c.id)
                )
            ).all()
            sums = dict(
                (
                    await conn.execute(
                        select(
                            ledger_entries.c.account_id, func.sum(ledger_entries.c.amount)
                        ).group_by(ledger_entries.c.account_id)
                    )
                ).all()
            )
            credits = dict((await conn.execute(select(accounts.c.id, accounts.c.credits))).all())
            counted = (await conn.execute(_KEPT_COUNTS[db.dialect])).all()
    finally:
        await db.dispose()

    problems: dict[str, list[str]] = collections.defaultdict(list)
    tally = Tally()
    by_id = {row["id"]: row for row in job_rows}

    # Every job ends, exactly once.
    final_events: dict[str, list[str]] = collections.defaultdict(list)
    for job_id, kind in finals:
        final_events[job_id].append(kind)
    for job_id in expected_jobs or ():
        if job_id not in by_id:
            problems["an accepted job does not exist"].append(job_id)
    for row in job_rows:
        status = row["status"]
        tally.by_status[status] += 1
        if status != "COMPLETED":
            tally.not_completed[f"{status} {row['error_code']}: {row['error']}"] += 1
        if status not in _FINAL:
            problems["a job did not end"].append(f"{row['id']} {status}/{row['step']}")
        elif final_events.get(row["id"]) != [_FINAL[status]]:
            problems["a job did not end exactly once"].append(
                f"{row['id']} {status} events={final_events.get(row['id'], [])}"
            )
        if row["lease_token"] is not None:
            problems["a job still holds a lease"].append(f"{row['id']} {row['lease_owner']}")

    # No upstream answer bought twice.
    if upstream_calls is not None:
        for row in job_rows:
            calls = upstream_calls.get(row["id"], 0)
            if calls > 1 + row["interrupted_calls"]:
                problems["an upstream answer was bought twice"].append(
                    f"{row['id']} calls={calls} interrupted={row['interrupted_calls']}"
                )
            if row["status"] == "COMPLETED" and calls == 0:
                problems["a completed job never called upstream"].append(row["id"])

    # Every final webhook delivered, once.
    final_deliveries: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    for delivery_id, job_id, event, status in deliveries:
        final_deliveries[job_id].append((delivery_id, event, status))
    for row in job_rows:
        if row["webhook_url"] is None or row["status"] not in ("COMPLETED", "FAILED"):
            continue
        expected_event = _FINAL[row["status"]]
        rows = final_deliveries.get(row["id"], [])
        if [(event, status) for _, event, status in rows] != [(expected_event, "delivered")]:
            problems["a final webhook was not delivered exactly once"].append(
                f"{row['id']} {expected_event} rows={[(e, s) for _, e, s in rows]}"
            )
        if webhooks is not None:
            seen = [(event, delivery) for event, delivery in webhooks.get(row["id"], [])]
            finals_seen = [pair for pair in seen if pair[0] in _FINAL_WEBHOOKS]
            ids = {delivery for _, delivery in finals_seen}
            events = {event for event, _ in finals_seen}
            once = len(finals_seen) == 1 or (redeliveries_allowed and len(ids) == 1)
            if events != {expected_event} or len(ids) != 1 or not once:
                problems["the receiver did not get the final webhook exactly once"].append(
                    f"{row['id']} {expected_event} received={finals_seen}"
                )

    # The ledger balances.
    last_balance: dict[str, int] = {}
    by_job: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for account_id, job_id, kind, amount, balance_after in ledger:
        last_balance[account_id] = int(balance_after)
        if job_id is not None:
            by_job[job_id].append((kind, int(amount)))
    for account_id, balance in credits.items():
        total = int(sums.get(account_id) or 0)
        if total != int(balance) or last_balance.get(account_id, 0) != int(balance):
            problems["an account's credits do not match its ledger"].append(
                f"{account_id} credits={balance} ledger={total} last={last_balance.get(account_id)}"
            )
    for row in job_rows:
        entries = by_job.get(row["id"], [])
        if row["sandbox"]:  # a test key's job is never charged
            if entries:
                problems["a test key's job has ledger entries"].append(f"{row['id']} {entries}")
            continue
        # ``credit_cost`` is what the job costs in the end: a failed or cancelled job's is 0
        # (refunded), a job that delivered fewer images than it paid for is charged pro rata.
        kinds = [kind for kind, _ in entries]
        reserved = -sum(amount for kind, amount in entries if kind == "reserve")
        refunded = sum(amount for kind, amount in entries if kind == "refund")
        if not entries:
            settled = row["status"] != "COMPLETED" or row["credit_cost"] == 0
        elif row["status"] == "COMPLETED":
            settled = kinds in (["reserve", "capture"], ["reserve", "refund", "capture"]) and (
                reserved - refunded == row["credit_cost"]
            )
        elif row["status"] in ("FAILED", "CANCELLED"):
            settled = kinds == ["reserve", "refund"] and refunded == reserved
        else:
            continue
        if not settled:
            problems["a job's credits were not settled exactly once"].append(
                f"{row['id']} {row['status']} cost={row['credit_cost']} entries={entries}"
            )

    # Admission's counts (kept by triggers) match the jobs.
    actual: collections.Counter[tuple[str, str]] = collections.Counter(
        (row["account_id"], row["status"]) for row in job_rows
    )
    kept = {account_id: (queued, processing) for account_id, queued, processing in counted}
    for account_id in set(kept) | {account for account, _ in actual}:
        truth = (actual[account_id, "QUEUED"], actual[account_id, "PROCESSING"])
        if kept.get(account_id, (0, 0)) != truth:
            problems["an account's queued/processing counts do not match its jobs"].append(
                f"{account_id} kept={kept.get(account_id)} jobs={truth}"
            )

    if problems:
        lines = []
        for rule, cases in problems.items():
            lines.append(f"{rule}: {len(cases)}")
            lines.extend(f"    {case}" for case in cases[:_SHOWN])
        raise InvariantsBroken("\n".join(lines))
    return tally
