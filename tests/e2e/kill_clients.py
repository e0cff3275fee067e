"""The kill test's clients (tests/e2e/test_kill_recovery.py): what they were told (acknowledged uploads
and jobs), the phases they have under way, and the waits that aim a kill at a moment."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from local import snapshot
from tests.images import fresh_image

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_BATCH = 2  # listings per batch: each run of the migration is under way for a while
# Clients upload until the kill (at most this many per round, a hang guard); the presigned one paced, as
# its uploads are quick: the catalogue stays small (every snapshot, the restart's restore and reconcile
# grow with it) and uploads are in flight at every kill
UPLOADS_PER_CLIENT = 40
PRESIGNED_PACE_S = 1.5
JOBS_PER_ROUND = 30
# A hang guard: a round whose phase is not under way by then kills anyway. The run asserts that every
# phase was under way at some kill, so a bound too short for a loaded machine failed it
PHASE_WAIT_S = 300


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
    api: str, environment: dict[str, str], world: World, seed: int, stop: threading.Event
) -> tuple[list[threading.Thread], list[subprocess.Popen[bytes]]]:
    """Concurrent clients of the stack at `api` until the kill: API uploads, presigned uploads, generation
    jobs, a migration (its command run with `environment`). Returns the client threads and the migration's
    process (a client too: ended after the kill)."""
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
                        json={
                            "s3_urls": stored.json()["s3_url"],
                            "product_type": "ring",
                            "image_types": [1, 3],
                            "dimensions_mm": {"width": 22, "height": 25},
                        },
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
        # One run after another until the kill, each recomputing every listing (--force): a migration with
        # work to do is under way at any moment of the round, however fast the machine
        runs = 0
        while not stop.is_set():
            with world.busy("migration"):  # the client follows its execution until it ends
                process = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "listing_vision.realestate.migrate", "--via-stepfunctions"),
                        *("execute", "--batch-size", str(MIGRATION_BATCH), "--force"),
                    ],
                    cwd=ROOT,
                    env=environment,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                processes.append(process)
                status = process.wait(timeout=300)
            runs += 1
            if status != 0:
                return world.client_ended("migration", f"exit status {status} in run {runs}")
        world.client_ended("migration", f"stopped after {runs} runs")

    threads = [threading.Thread(target=api_uploads, args=(worker,), daemon=True) for worker in range(3)]
    threads += [threading.Thread(target=target, daemon=True) for target in (presigned_uploads, generation, migration)]
    for thread in threads:
        thread.start()
    return threads, processes


def a_snapshot_covers_an_upload(state: Path, world: World, since: float) -> None:
    """Waits for a snapshot begun after an upload acknowledged since `since`, so every kill has
    something the snapshot promises to keep (the check after the restart must find it)."""
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline:
        began = snapshot.started_at(state)
        with world.lock:
            if began is not None and any(since <= u.acknowledged_at < began for u in world.uploads):
                return
        time.sleep(0.05)
    raise AssertionError("no snapshot covered an upload within 300 s")


def when_under_way(phase: str, world: World, state: Path) -> bool:
    """Waits until `phase` is under way; False if it was not within PHASE_WAIT_S."""
    deadline = time.monotonic() + PHASE_WAIT_S
    while time.monotonic() < deadline:
        if phase in under_way(world, state):
            return True
        time.sleep(0.01)
    return False
