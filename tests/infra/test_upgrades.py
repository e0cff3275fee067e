"""Upgrading a stage whose stores hold data, and tearing one down, lose nothing: the stack's stores
keep their logical ids and the properties that would replace them (infra/store_changes.py), and a
stage that retains data keeps each store when it is deleted or replaced."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra import store_changes
from tests.infra.conftest import Synthesized

SNAPSHOT = Path(__file__).with_name("stores.json")
DATA_STORES = ("AWS::S3::Bucket", "AWS::DynamoDB::Table")


def test_no_store_is_replaced_or_removed_since_the_snapshot(synthesized: Synthesized) -> None:
    # Given the stores of the stack as released (the snapshot) and as the code synthesizes them now
    released = json.loads(SNAPSHOT.read_text())
    now = store_changes.stores(synthesized.template.to_json())
    # When the two are compared as a deploy over a stage holding data would change them
    changes = store_changes.compare(released, now)
    # Then every store is kept: a renamed construct or a changed key would give the code an empty store
    lost = [change.line() for change in changes if change.change in store_changes.UNSAFE]
    assert not lost, "a deploy would lose data:\n" + "\n".join(lost)
    # And a new store is added to the snapshot on purpose, so that a later rename of it is caught too
    added = [change.logical_id for change in changes if change.change == "added"]
    assert not added, (
        f"new stores {added}: add them to {SNAPSHOT.name} "
        "(python -m infra.store_changes --stores cdk.out/<stack>.template.json)"
    )


def _template(synthesized: Synthesized) -> dict[str, Any]:
    return copy.deepcopy(synthesized.template.to_json())


def test_the_check_names_each_store_a_deploy_would_lose(synthesized: Synthesized, tmp_path: Path, capsys: Any) -> None:
    # Given the deployed template and a new one in which one table's construct was renamed, another
    # table's key changed, a third got two new indexes at once, and a fourth one new index
    deployed = _template(synthesized)
    new = _template(synthesized)
    tables = sorted(name for name, r in new["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table")
    renamed, rekeyed, two_indexes, one_index = tables[:4]
    new["Resources"][renamed + "Renamed"] = new["Resources"].pop(renamed)
    new["Resources"][rekeyed]["Properties"]["KeySchema"] = [{"AttributeName": "other", "KeyType": "HASH"}]
    for table, count in ((two_indexes, 2), (one_index, 1)):
        indexes = new["Resources"][table]["Properties"].setdefault("GlobalSecondaryIndexes", [])
        indexes += [{"IndexName": f"added-{n}"} for n in range(count)]
    (tmp_path / "deployed.json").write_text(json.dumps(json.dumps(deployed)))  # get-template's string form
    (tmp_path / "new.json").write_text(json.dumps(new))
    # When the check compares them
    status = store_changes.main([str(tmp_path / "deployed.json"), str(tmp_path / "new.json")])
    printed = capsys.readouterr().out
    # Then it fails, naming each store and what would happen to it
    assert status == 1
    lines = {line.split()[2]: line for line in printed.splitlines()[:-1]}  # change, type, logical id, (why)
    assert lines[renamed].startswith("removed")
    assert lines[renamed + "Renamed"].startswith("added")
    assert lines[rekeyed].startswith("replaced") and "KeySchema changed" in lines[rekeyed]
    assert lines[two_indexes].startswith("refused") and "one global secondary index per update" in lines[two_indexes]
    assert lines[one_index].startswith("changed")
    assert "would lose data or fail the update" in printed.splitlines()[-1]
    # And the same template twice is safe
    assert store_changes.main([str(tmp_path / "new.json"), str(tmp_path / "new.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(": safe")


def test_a_file_that_is_no_template_is_refused_not_called_safe(
    synthesized: Synthesized, tmp_path: Path, capsys: Any
) -> None:
    # Given the new template, and as the deployed one: get-template's whole answer (no --query
    # TemplateBody), a template without Resources, a file that is not JSON, and none at all
    (tmp_path / "new.json").write_text(json.dumps(_template(synthesized)))
    wrong = {
        "whole-answer.json": json.dumps({"TemplateBody": _template(synthesized), "StagesAvailable": ["Original"]}),
        "no-resources.json": json.dumps({"AWSTemplateFormatVersion": "2010-09-09"}),
        "list.json": "[]",
        "not-json.json": "Resources:\n  Table:\n",
    }
    for name, text in wrong.items():
        (tmp_path / name).write_text(text)
    for name in [*wrong, "missing.json"]:
        # When the check is given it as the deployed template
        status = store_changes.main([str(tmp_path / name), str(tmp_path / "new.json")])
        captured = capsys.readouterr()
        # Then it stops with status 2 naming the file, instead of calling every store "added" and the deploy safe
        assert status == 2, (name, captured.out)
        assert name in captured.err and "safe" not in captured.out


@pytest.mark.parametrize("stage", ["retaining", "deleting"])
def test_a_stage_keeps_its_stores_when_deleted_only_if_it_retains_data(
    stage: str, synthesized: Synthesized, first_stage: Synthesized
) -> None:
    # Given a stage that retains data (retain_data=true) and one that does not (a dev stage's default)
    template = first_stage if stage == "retaining" else synthesized
    assert template.config.removal_retains_data is (stage == "retaining")
    stores = {name: r for name, r in template.resources.items() if r["Type"] in DATA_STORES}
    assert stores
    policies = {(r.get("DeletionPolicy"), r.get("UpdateReplacePolicy")) for r in stores.values()}
    auto_deletes = template.of_type("Custom::S3AutoDeleteObjects")
    if stage == "retaining":
        # Then `cdk destroy` (or a replacement) leaves every bucket and table, objects and items in them
        assert policies == {("Retain", "Retain")}
        assert auto_deletes == {}
    else:
        # Then they go with the stack, each bucket emptied first
        assert policies == {("Delete", "Delete")}
        created_buckets = {name for name, r in stores.items() if r["Type"] == "AWS::S3::Bucket"}
        emptied = {r["Properties"]["BucketName"]["Ref"] for r in auto_deletes.values()}
        assert emptied == created_buckets
