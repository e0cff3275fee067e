"""The local stack's migration definition is kept once synthesized (local/workflow.py): every start
of the stack reads it from build/local-cache/ instead of starting CDK's Node.js runtime, and any
change to what it is made of (the arguments, the source of infra/) is synthesized afresh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from local import workflow
from local.workflow import synthesize_definition


@pytest.fixture()
def copy_of_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sources the digest reads, and a cache folder of its own."""
    root = tmp_path / "repo"
    shutil.copytree(workflow.ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__", "cdk.out"))
    for source in ("functions/specs.py", "local/workflow.py"):
        (root / source).parent.mkdir(exist_ok=True)
        shutil.copy(workflow.ROOT / source, root / source)
    monkeypatch.setattr(workflow, "ROOT", root)
    monkeypatch.setattr(workflow, "CACHE", root / "build" / "local-cache")
    return root


def test_a_kept_definition_is_read_back_without_synthesizing(copy_of_sources: Path) -> None:
    # Given a definition kept under the digest of its inputs
    key = workflow._inputs_digest("migration", "artifacts", None)
    kept = {"StartAt": "Kept", "States": {"Kept": {"Type": "Succeed"}}}
    workflow.CACHE.mkdir(parents=True)
    (workflow.CACHE / f"migration-asl-{key}.json").write_text(json.dumps(kept))
    # When the stack asks for the definition
    definition = synthesize_definition("migration", "artifacts")
    # Then it is the kept one (a synthesis would have produced the construct's states)
    assert definition == kept


def test_any_change_to_its_inputs_is_a_different_digest(copy_of_sources: Path) -> None:
    # Given the digest of the stack's definition
    before = workflow._inputs_digest("migration", "artifacts", None)
    # Then other arguments are another digest, and the same ones the same
    assert workflow._inputs_digest("migration", "artifacts", None) == before
    assert workflow._inputs_digest("migration", "other-artifacts", None) != before
    assert workflow._inputs_digest("other-function", "artifacts", None) != before
    # And when the construct's source changes, so does the digest
    construct = copy_of_sources / "infra" / "constructs" / "migration.py"
    construct.write_text(construct.read_text() + "\n# changed\n")
    assert workflow._inputs_digest("migration", "artifacts", None) != before
