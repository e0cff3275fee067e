"""The local stack's endpoints are read from one place (local/endpoints.py): the settings `make run`
reads (LOCAL_HOST, LOCAL_MOTO_PORT, LOCAL_OPENSEARCH_PORT), so `make migrate`, `make backfill`
and the search-quality evaluation reach a stack started on other ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evaluation import search_quality
from listing_vision.config import get_settings
from local.endpoints import Endpoints

ROOT = Path(__file__).resolve().parents[2]
OTHER_PORTS = {"LOCAL_HOST": "0.0.0.0", "LOCAL_MOTO_PORT": "9101", "LOCAL_OPENSEARCH_PORT": "9102"}


def run(*command: str, **env: str) -> str:
    path = f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}"
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_a_client_command_gets_the_stacks_endpoints_from_its_settings() -> None:
    # Given a stack started on other ports (on every interface), and a shell pointing elsewhere
    env = {**OTHER_PORTS, "AWS_ENDPOINT_URL": "https://s3.example", "OPENSEARCH_URL": "https://search.example"}
    # When a command runs through local.endpoints (what `make migrate` and `make backfill` do)
    show = "import os; print(os.environ['AWS_ENDPOINT_URL'], os.environ['OPENSEARCH_URL'])"
    seen = run(sys.executable, "-m", "local.endpoints", sys.executable, "-c", show, **env)
    # Then it reaches the stack's moto and OpenSearch, on loopback
    assert seen.split() == ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
    # And `python -m local` takes its defaults from the same settings
    assert "default 9101" in run(sys.executable, "-m", "local", "--help", **OTHER_PORTS)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_migrate_and_backfill_name_no_port() -> None:
    # Given the Makefile, when its migrate and backfill recipes are printed (the stamp is the
    # Makefile itself with no requirements, so make has no virtual environment to build first:
    # make remakes an out-of-date makefile even under -n)
    printed = run("make", "-n", "migrate", "backfill", "STAMP=Makefile", "REQUIREMENTS=", "ARGS=coverage").splitlines()
    recipes = [line for line in printed if "listing_vision." in line]
    # Then both run their command through local.endpoints, with no endpoint written in them
    assert len(recipes) == 2 and all("-m local.endpoints " in line for line in recipes), recipes
    assert not any("127.0.0.1" in line or "_URL=" in line for line in recipes), recipes


def test_search_quality_reads_the_local_stacks_opensearch_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stack on other ports and no endpoint set in this shell
    for name, value in OTHER_PORTS.items():
        monkeypatch.setenv(name, value)
    for name in Endpoints().client_environment():
        monkeypatch.setenv(name, "")  # recorded, so what the evaluation sets is undone afterwards
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    reached: list[Any] = []

    class Stop(Exception):
        pass

    def evaluate(index: Any, **_: Any) -> dict[str, Any]:
        reached.append(index.client.transport.hosts)
        raise Stop

    monkeypatch.setattr(search_quality, "evaluate", evaluate)
    try:
        # When the evaluation starts
        with pytest.raises(Stop):
            search_quality.main(["--listings", "1"])
    finally:
        get_settings.cache_clear()
    # Then it reads the stack's OpenSearch, not OpenSearch's own default port (9200)
    assert reached == [[{"host": "127.0.0.1", "port": 9102}]]
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9101"
