"""Which running steps a heartbeat stops (``queue.worker.lost_leases``).

A step that has just written its job's last transition has given its lease up but not ended
yet; a heartbeat that renews in that moment does not find the job. Stopping the step then
cancelled a job that had completed (seen as a ``worker.lease_lost`` warning and a direct job
answered as unfinished on a loaded machine).
"""

from __future__ import annotations

from imagegate.queue.worker import lost_leases


def test_a_renewed_lease_is_kept() -> None:
    assert lost_leases({"a": "t1"}, {"a": "t1"}, set()) == ([], set())


def test_a_lease_held_under_another_token_is_lost_at_once() -> None:
    assert lost_leases({"a": "t1"}, {"a": "t2"}, set()) == (["a"], set())


def test_a_job_not_found_once_is_given_until_the_next_heartbeat() -> None:
    lost, unseen = lost_leases({"a": "t1", "b": "t2"}, {"b": "t2"}, set())
    assert lost == [] and unseen == {"a"}


def test_a_step_still_running_when_its_job_is_not_found_twice_is_stopped() -> None:
    lost, unseen = lost_leases({"a": "t1"}, {}, {"a"})
    assert lost == ["a"] and unseen == set()


def test_only_the_jobs_not_found_this_time_are_remembered() -> None:
    lost, unseen = lost_leases({"a": "t1", "c": "t3"}, {"a": "t1"}, {"b"})
    assert lost == [] and unseen == {"c"}
