"""`kill -9` of the whole local stack at chosen points, during concurrent uploads (API and presigned), a
migration and generation jobs; restarted after each kill on the same state folder. Each round aims its
kill at one phase (KILL_PLAN): once a snapshot covers one of the round's uploads (so every restart has
something to keep) and that phase is under way (a migration running, an accepted asynchronous event not
yet delivered, a generation job acknowledged and not ended, an API upload or a presigned upload in
flight) a seeded fraction of a second later, the stack is killed. Over the run, the kills must have
caught each phase under way at least once.

The stack keeps its stores by snapshots every `--snapshot-interval` seconds and its accepted
asynchronous events in a journal (local/snapshot.py, local/lambda_runtime.py), so a kill loses at
most the writes made since the last snapshot began. After each restart (its reconcile run, the
journal's events delivered) the test checks what that promises:

- every upload acknowledged before the restored snapshot began is found as a duplicate of itself,
  and its link serves its bytes;
- the catalogue is consistent (a dry-run reconcile finds nothing to repair): no vector or record
  without its photo, no photo without its vector;
- no content is stored twice;
- at the end, every acknowledged job has ended, and the migration, run again, reaches the same
  verified state a clean run does.

Each kill point, what was under way at it, why each client stopped, what the kill left before the
restart's reconcile and where the round's time went are printed (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from local import snapshot
from tests.e2e.kill_clients import World, a_snapshot_covers_an_upload, under_way, when_under_way, workload
from tests.local_process import clean_environment, local_command

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SEED = 2027
# The phase each round's kill aims at, in order (the migration first: its first run of the test migrates
# the demo listings; each later one recomputes them). Aimed rounds catch every phase, where ten delays
# after a snapshot did not (by then the clients had mostly ended: most kills caught no upload); each phase
# is aimed at twice, at two seeded delays, so the run kills at ten points.
PHASES_AIMED_AT = ("migration", "generation", "undelivered_event", "api_upload", "presigned_upload")
KILL_PLAN = PHASES_AIMED_AT * 2
PHASES = frozenset(PHASES_AIMED_AT)
SNAPSHOT_INTERVAL_S = 1.0
JOB_DEADLINE_S = 60  # GENERATION_DEADLINE_S for this stack: a run whose worker was killed ends by then
# Few listings (each brings its vision cache rows, which every snapshot and restore handles), migrated in
# small batches (kill_clients.MIGRATION_BATCH)
DEMO_LISTINGS = 20
CLAIM_LEASE_S = 5


@dataclass
class Stack:
    process: subprocess.Popen[str]
    api: str = ""
    moto: str = ""
    opensearch: str = ""
    output: list[str] = field(default_factory=list)

    def client_environment(self) -> dict[str, str]:
        return {
            **clean_environment(),
            "AWS_ENDPOINT_URL": self.moto,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "OPENSEARCH_URL": self.opensearch,
        }

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the stack and anything it started, at once
        self.process.wait(timeout=60)


def start(state: Path) -> Stack:
    process = subprocess.Popen(
        local_command(state, "--snapshot-interval", str(SNAPSHOT_INTERVAL_S), demo_listings=DEMO_LISTINGS),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so one signal kills all of it
        env={
            **clean_environment(),
            "PYTHONUNBUFFERED": "1",
            "CAPTION_PROVIDER": "offline",
            "GENERATION_DEADLINE_S": str(JOB_DEADLINE_S),
            # A killed request's content claim is taken over once its lease ends (120 s by default, and
            # Lambda retries a minute or two apart); 5 s, so a restart's redelivered events settle here
            "CLAIM_LEASE_S": str(CLAIM_LEASE_S),
        },
    )
    stack = Stack(process)
    assert process.stdout is not None
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline and not stack.api:
        line = process.stdout.readline()
        if not line:
            break
        stack.output.append(line)
        if line.startswith("  AWS (moto)"):
            stack.moto = line.split()[2]
        elif line.startswith("  OpenSearch"):
            stack.opensearch = line.split()[1]
        elif line.startswith("READY "):
            stack.api = line.split()[1]
    assert stack.api, "".join(stack.output)
    threading.Thread(target=lambda: [stack.output.append(line) for line in process.stdout or ()], daemon=True).start()
    return stack


@contextmanager
def running(state: Path) -> Iterator[Stack]:
    stack = start(state)
    try:
        yield stack
    finally:
        if stack.process.poll() is None:
            stack.kill()


def left_by_the_kill(state: Path) -> dict[str, Any]:
    """What the kill left on disk: the snapshot's moment, and the asynchronous events undelivered."""
    queue = state / "lambda-queue"
    return {
        "snapshot_started_at": snapshot.started_at(state),
        "undelivered_events": len(list(queue.glob("*.json"))) if queue.exists() else 0,
    }


def settled(stack: Stack, state: Path) -> None:
    """The restart's redelivered events and the uploads they index, finished."""
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline and any((state / "lambda-queue").glob("*.json")):
        time.sleep(0.2)
    assert not any((state / "lambda-queue").glob("*.json")), "redelivered events never finished"


def reconcile_dry_run(stack: Stack, command: bool) -> tuple[bool, str]:
    """A dry-run reconcile of every storefront: (consistent, its report). `command`: through the command
    `make reconcile ARGS=--dry-run` runs (a Python process of its own); otherwise its one call, the
    reconcile function invoked on the stack's Lambda, made from here (each round is spared a Python start)."""
    if command:
        run = subprocess.run(
            [sys.executable, "-m", "listing_vision.jewelry.reconcile", "--via-lambda", "dedupe-reconcile", "--dry-run"],
            cwd=ROOT,
            env=stack.client_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        return run.returncode == 0, run.stdout + run.stderr
    lambda_client = boto3.client(
        "lambda",
        endpoint_url=stack.moto,
        region_name="us-east-1",
        aws_access_key_id="l",
        aws_secret_access_key="l",
        config=Config(read_timeout=300, retries={"max_attempts": 0}),
    )
    answer = lambda_client.invoke(FunctionName="dedupe-reconcile", Payload=json.dumps({"dry_run": True}).encode())
    report = answer["Payload"].read().decode()
    return "FunctionError" not in answer and json.loads(report)["consistent"] is True, report


def stored_contents(stack: Stack) -> list[str]:
    """The content of every photo the catalogue holds, by its ETag (the MD5 of the bytes of an object put
    or copied whole, as every photo here is: the listing says it, no body is read): API uploads, and
    presigned ones by their copy under their content key (their `incoming/` object is only the form's inbox)."""
    s3 = boto3.client(
        "s3", endpoint_url=stack.moto, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )
    contents = []
    for bucket in ("alyaimg", "blyskimg"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                if item["Key"].startswith("incoming/"):
                    continue  # an inbox: an indexed upload's photo is its catalogue copy, the rest are not photos
                assert "-" not in item["ETag"], item  # a multipart ETag is no content digest
                contents.append(item["ETag"])
    return contents


def check_after_restart(
    stack: Stack, state: Path, world: World, snapshot_started_at: float | None, everything: bool = False
) -> dict[str, Any]:
    settled(stack, state)
    # Then the catalogue is consistent: nothing dangling, nothing missing (a dry run repairs nothing;
    # the last restart's through its command)
    consistent, report = reconcile_dry_run(stack, command=everything)
    assert consistent, report
    # And no content is stored twice
    contents = stored_contents(stack)
    assert len(contents) == len(set(contents)), "a photo is stored twice"
    # And every upload acknowledged before the restored snapshot began is found, as itself, and served
    kept = [u for u in world.uploads if snapshot_started_at is not None and u.acknowledged_at < snapshot_started_at]
    assert kept or snapshot_started_at is None, "the kill came after a snapshot covered an upload"
    # (each round checks what it has not checked yet and a seeded sample of the rest; the last, all)
    fresh = [u for u in kept if not u.checked]
    older = [u for u in kept if u.checked]
    for upload in kept if everything else fresh + random.Random(len(kept)).sample(older, min(len(older), 5)):
        answer = requests.post(
            f"{stack.api}/image_similarity_search", files={"file": ("p.jpg", upload.data)}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["duplicate_found"] is True, answer.text
        best = answer.json()["results"][0]
        assert best["distance"] == 0.0
        assert requests.get(best["path"], timeout=30).content == upload.data
        upload.checked = True
    # Uploads acknowledged after it may be lost (the documented window); those kept are not lost again
    world.uploads = kept
    return {"uploads_kept": len(kept), "catalogue_photos": len(contents)}


def test_kill_9_at_seeded_points_loses_nothing_older_than_the_snapshot(tmp_path: Path) -> None:
    state = tmp_path / "state"
    schedule = random.Random(SEED)
    world = World()
    plan = [(phase, round(schedule.uniform(0.0, 0.6), 2)) for phase in KILL_PLAN]
    print(f"\nkill -9 at these phases, under way at least this long after a snapshot covers an upload (s): {plan}")
    left: dict[str, Any] = {"snapshot_started_at": None}
    caught: set[str] = set()
    for round_number, (phase, delay) in enumerate(plan):
        began = time.monotonic()
        with running(state) as stack:
            # Given a stack restarted on what the last kill left
            started = time.monotonic()
            checked = check_after_restart(stack, state, world, left["snapshot_started_at"])
            print(f"round {round_number}: restart after {left}: {checked}; {restart_summary(stack)}")
            # When clients upload, generate and migrate, and the whole stack is killed once a snapshot
            # covers one of the round's uploads and the round's phase is under way
            stop = threading.Event()
            round_started, checked_at = time.time(), time.monotonic()
            world.ended = []
            threads, processes = workload(stack.api, stack.client_environment(), world, round_number + 1, stop)
            a_snapshot_covers_an_upload(state, world, since=round_started)
            covered = time.monotonic()
            time.sleep(delay)
            reached = when_under_way(phase, world, state)
            at_kill = under_way(world, state)
            stack.kill()
            killed = time.monotonic()
            stop.set()
            for process in processes:  # a client of the dead stack: nothing checks how it ends
                if process.poll() is None:
                    process.kill()
            for thread in threads:
                thread.join(timeout=60)
        left = left_by_the_kill(state)
        caught |= at_kill
        print(
            f"  killed aiming at {phase}{'' if reached else ' (not under way within the wait)'}; "
            f"under way: {sorted(at_kill)}; clients: {world.ended}\n"
            f"  round's seconds: start {started - began:.1f}, checks {checked_at - started:.1f}, "
            f"a snapshot covering an upload {covered - checked_at:.1f}, the phase {killed - covered:.1f}, "
            f"clients' end {time.monotonic() - killed:.1f}"
        )
    # Then every phase was under way at some kill
    assert caught >= PHASES, f"phases no kill caught under way: {sorted(PHASES - caught)}"
    # And after the last restart, as after every one, nothing dangling, nothing lost before the window
    began = time.monotonic()
    with running(state) as stack:
        checked = check_after_restart(stack, state, world, left["snapshot_started_at"], everything=True)
        print(f"final restart after {left}: {checked}; {restart_summary(stack)} ({time.monotonic() - began:.1f} s)")
        began = time.monotonic()
        # And the migration, run again, reaches the verified state of a clean run
        migrated = subprocess.run(
            [sys.executable, "-m", "listing_vision.realestate.migrate", "--via-stepfunctions", "execute"],
            cwd=ROOT,
            env=stack.client_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        verified = subprocess.run(
            [sys.executable, "-m", "listing_vision.realestate.migrate", "verify"],
            cwd=ROOT,
            env=stack.client_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert verified.returncode == 0 and '"passed": true' in verified.stdout, verified.stdout + verified.stderr
        print(f"  migration run again and verified ({time.monotonic() - began:.1f} s)")
        began = time.monotonic()
        # And every job a client was told of has ended (a killed worker's run: by its deadline; waited for
        # after the migration's checks, which take part of that time)
        deadline = time.monotonic() + JOB_DEADLINE_S + 60
        open_jobs = dict(world.jobs)
        while open_jobs and time.monotonic() < deadline:
            for job_id in list(open_jobs):
                answer = requests.get(f"{stack.api}/jobs/{job_id}", timeout=30)
                if answer.status_code == 404 or answer.json()["status"] in ("done", "partial", "failed"):
                    open_jobs.pop(job_id)  # 404: acknowledged within the window and lost with it
            time.sleep(1)
        assert not open_jobs, f"jobs that never ended: {open_jobs}"
        print(f"  every job ended ({time.monotonic() - began:.1f} s)")
        stack.process.send_signal(signal.SIGINT)
        stack.process.wait(timeout=120)


def restart_summary(stack: Stack) -> str:
    """The start's own account of the restore, the repairs and the redelivered events."""
    lines = [
        line.strip()
        for line in stack.output
        if line.startswith(("Local stack up", "  Restored", "  Reconciled", "  Redelivered"))
    ]
    return " | ".join(lines) or "nothing restored"
