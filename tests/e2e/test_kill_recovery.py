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

import hashlib
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

from local import snapshot
from tests.e2e.test_local_stack_process import clean_environment
from tests.images import fresh_image

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SEED = 2027
# The phase each round's kill aims at, in order. The migration has real work only until it has migrated
# the demo listings once, so it comes first; the generation job comes early, so a job its kill left
# running has reached its deadline by the end. Five aimed rounds catch every phase, where ten delays
# after a snapshot did not (by then the clients had mostly ended: most kills caught no upload).
KILL_PLAN = ("migration", "generation", "undelivered_event", "api_upload", "presigned_upload")
PHASES = frozenset(KILL_PLAN)
PHASE_WAIT_S = 60  # a round whose phase is not under way by then kills anyway; the run's assertion counts
SNAPSHOT_INTERVAL_S = 1.0
JOB_DEADLINE_S = 60  # GENERATION_DEADLINE_S for this stack: a run whose worker was killed ends by then
# Few listings (each brings its vision cache rows, which every snapshot and restore handles), migrated in
# small batches: the migration is still under way when round 0's kill comes
DEMO_LISTINGS = 20
MIGRATION_BATCH = 2
CLAIM_LEASE_S = 5
# Clients upload until the kill (at most this many per round, a hang guard); the presigned one paced, as
# its uploads are quick: the catalogue stays small (every snapshot, the restart's restore and reconcile
# grow with it) and uploads are in flight at every kill
UPLOADS_PER_CLIENT = 40
PRESIGNED_PACE_S = 1.5
JOBS_PER_ROUND = 10


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
        [
            *(sys.executable, "-m", "local", "--port", "0", "--moto-port", "0", "--opensearch-port", "0"),
            *("--state-dir", str(state), "--demo-listings", str(DEMO_LISTINGS)),
            *("--snapshot-interval", str(SNAPSHOT_INTERVAL_S)),
        ],
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


@dataclass
class Upload:
    data: bytes
    acknowledged_at: float
    checked: bool = False  # found after a restart once already


@dataclass
class World:
    """What the clients were told: acknowledged uploads and jobs."""

    uploads: list[Upload] = field(default_factory=list)
    jobs: dict[str, float] = field(default_factory=dict)  # job id -> when it was acknowledged
    under_way: dict[str, int] = field(default_factory=dict)  # client-side phase -> operations in flight
    ended: list[str] = field(default_factory=list)  # this round's clients: why each stopped
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def busy(self, phase: str) -> Iterator[None]:
        with self.lock:
            self.under_way[phase] = self.under_way.get(phase, 0) + 1
        try:
            yield
        finally:
            with self.lock:
                self.under_way[phase] -= 1

    def client_ended(self, client: str, why: str) -> None:
        with self.lock:
            self.ended.append(f"{client}: {why}")


def under_way(world: World, state: Path) -> set[str]:
    """The phases under way at this moment: the clients' operations in flight, and the accepted
    asynchronous events (the presigned uploads' trigger, the generation worker) not yet delivered."""
    with world.lock:
        phases = {phase for phase, count in world.under_way.items() if count > 0}
    if any((state / "lambda-queue").glob("*.json")):
        phases.add("undelivered_event")
    return phases


def workload(
    stack: Stack, world: World, seed: int, stop: threading.Event
) -> tuple[list[threading.Thread], list[subprocess.Popen[bytes]]]:
    """Concurrent clients until the kill: API uploads, presigned uploads, generation jobs, a migration.
    Returns the client threads and the migration's process (a client too: ended after the kill)."""
    api = stack.api
    processes: list[subprocess.Popen[bytes]] = []

    def api_uploads(worker: int) -> None:
        for number in range(UPLOADS_PER_CLIENT):
            if stop.is_set():
                return world.client_ended(f"api {worker}", f"stopped after {number}")
            data = fresh_image(seed=seed * 10_000 + worker * 1_000 + number)
            try:
                with world.busy("api_upload"):
                    answer = requests.post(
                        f"{api}/image_similarity_search", files={"file": ("p.jpg", data)}, timeout=30
                    )
            except requests.RequestException as error:
                return world.client_ended(f"api {worker}", f"{type(error).__name__} after {number}")  # the kill
            if answer.status_code == 200 and answer.json()["duplicate_found"] is False:
                with world.lock:
                    world.uploads.append(Upload(data, time.time()))
        world.client_ended(f"api {worker}", f"all {UPLOADS_PER_CLIENT} sent")

    def presigned_uploads() -> None:
        for number in range(UPLOADS_PER_CLIENT):
            if stop.is_set():
                return world.client_ended("presigned", f"stopped after {number}")
            data = fresh_image(seed=seed * 10_000 + 9_000 + number)
            try:
                with world.busy("presigned_upload"):
                    grant = requests.post(f"{api}/uploads", json={"filename": "u.jpg"}, timeout=30).json()
                    requests.post(grant["url"], data=grant["fields"], files={"file": ("u.jpg", data)}, timeout=30)
            except (requests.RequestException, ValueError, KeyError) as error:
                return world.client_ended("presigned", f"{type(error).__name__} after {number}")
            stop.wait(PRESIGNED_PACE_S)
        world.client_ended("presigned", f"all {UPLOADS_PER_CLIENT} sent")

    def generation() -> None:
        for number in range(JOBS_PER_ROUND):  # one after another: a job is under way most of the round
            if stop.is_set():
                return world.client_ended("generation", f"stopped after {number}")
            data = fresh_image(seed=seed * 10_000 + 8_000 + number)
            try:
                stored = requests.post(f"{api}/image_similarity_search", files={"file": ("g.jpg", data)}, timeout=30)
                if stored.status_code != 200 or "s3_url" not in stored.json():
                    return world.client_ended("generation", f"upload answered {stored.status_code}: {stored.text}")
                with world.lock:
                    world.uploads.append(Upload(data, time.time()))
                with world.busy("generation"):  # from the request until the job has ended
                    job = requests.post(
                        f"{api}/generate-images",
                        json={"s3_urls": stored.json()["s3_url"], "product_type": "ring", "image_types": [1, 3]},
                        headers={"Prefer": "respond-async"},
                        timeout=30,
                    )
                    if job.status_code != 202:
                        return world.client_ended("generation", f"job answered {job.status_code}: {job.text}")
                    job_id = job.json()["job_id"]
                    with world.lock:
                        world.jobs[job_id] = time.time()
                    while not stop.is_set():
                        status = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()["status"]
                        if status in ("done", "partial", "failed"):
                            break
                        time.sleep(0.25)
            except (requests.RequestException, ValueError, KeyError) as error:
                return world.client_ended("generation", f"{type(error).__name__} after {number}")
        world.client_ended("generation", f"all {JOBS_PER_ROUND} ended")

    def migration() -> None:
        with world.busy("migration"):  # the client follows its execution until it ends
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "listing_vision.realestate.migrate", "--via-stepfunctions"),
                    *("execute", "--batch-size", str(MIGRATION_BATCH)),
                ],
                cwd=ROOT,
                env=stack.client_environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            world.client_ended("migration", f"exit status {process.wait(timeout=300)}")

    threads = [threading.Thread(target=api_uploads, args=(worker,), daemon=True) for worker in range(3)]
    threads += [threading.Thread(target=target, daemon=True) for target in (presigned_uploads, generation, migration)]
    for thread in threads:
        thread.start()
    return threads, processes


def a_snapshot_covers_an_upload(state: Path, world: World, since: float) -> None:
    """Waits for a snapshot begun after an upload acknowledged since `since`, so every kill has
    something the snapshot promises to keep (the check after the restart must find it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        began = snapshot.started_at(state)
        with world.lock:
            if began is not None and any(since <= u.acknowledged_at < began for u in world.uploads):
                return
        time.sleep(0.05)
    raise AssertionError("no snapshot covered an upload within 120 s")


def when_under_way(phase: str, world: World, state: Path) -> bool:
    """Waits until `phase` is under way; False if it was not within PHASE_WAIT_S."""
    deadline = time.monotonic() + PHASE_WAIT_S
    while time.monotonic() < deadline:
        if phase in under_way(world, state):
            return True
        time.sleep(0.01)
    return False


def left_by_the_kill(state: Path) -> dict[str, Any]:
    """What the kill left on disk: the snapshot's moment, and the asynchronous events undelivered."""
    queue = state / "lambda-queue"
    return {
        "snapshot_started_at": snapshot.started_at(state),
        "undelivered_events": len(list(queue.glob("*.json"))) if queue.exists() else 0,
    }


def settled(stack: Stack, state: Path) -> None:
    """The restart's redelivered events and the uploads they index, finished."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any((state / "lambda-queue").glob("*.json")):
        time.sleep(0.2)
    assert not any((state / "lambda-queue").glob("*.json")), "redelivered events never finished"


def reconcile_dry_run(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listing_vision.jewelry.reconcile", "--via-lambda", "dedupe-reconcile", "--dry-run"],
        cwd=ROOT,
        env=stack.client_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def stored_contents(stack: Stack) -> list[str]:
    """The SHA-256 of every photo the catalogue holds: API uploads, and presigned ones by their copy under
    their content key (their `incoming/` object is only the form's inbox)."""
    s3 = boto3.client(
        "s3", endpoint_url=stack.moto, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )
    contents = []
    for bucket in ("alyaimg", "blyskimg"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.startswith("incoming/"):
                    continue  # an inbox: an indexed upload's photo is its catalogue copy, the rest are not photos
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                contents.append(hashlib.sha256(body).hexdigest())
    return contents


def check_after_restart(
    stack: Stack, state: Path, world: World, snapshot_started_at: float | None, everything: bool = False
) -> dict[str, Any]:
    settled(stack, state)
    # Then the catalogue is consistent: nothing dangling, nothing missing (a dry run repairs nothing)
    dry = reconcile_dry_run(stack)
    assert dry.returncode == 0, dry.stdout + dry.stderr
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
    plan = [(phase, round(schedule.uniform(0.0, 0.3), 2)) for phase in KILL_PLAN]
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
            threads, processes = workload(stack, world, seed=round_number + 1, stop=stop)
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
    lines = [line.strip() for line in stack.output if line.startswith(("  Restored", "  Reconciled", "  Redelivered"))]
    return " | ".join(lines) or "nothing restored"
