"""The fine-grained access control decisions of provisioning, as data: which OpenSearch role the
functions get, and how the role mapping changes. (The REST calls that carry them need the security
plugin, which no engine installable here has; see tests/integration/test_provisioning.py.)"""

from __future__ import annotations

from listing_vision.config import Settings
from listing_vision.provisioning import LISTINGS_INDEX_ACTIONS, listings_role, mapping_update, role_arns, role_grants

DEDUPE = "arn:aws:iam::123456789012:role/dev-dedupe"
MIGRATION = "arn:aws:iam::123456789012:role/dev-migration"


def settings() -> Settings:
    return Settings(listings_index="listings-v2", opensearch_role_arns=f" {MIGRATION},{DEDUPE},,{DEDUPE} ")


def test_the_role_grants_the_listings_index_only() -> None:
    # Given a stage's settings, When its listings role is built
    role = listings_role(settings())
    # Then it names the listings index alone, with the listed actions
    granted = {"index_patterns": ["listings-v2"], "allowed_actions": list(LISTINGS_INDEX_ACTIONS)}
    assert role["index_permissions"] == [granted]


def test_a_role_read_back_with_the_plugins_own_fields_grants_the_same() -> None:
    # Given the role as the plugin answers it (its own fields added, lists in another order)
    wanted = listings_role(settings())
    read_back = {
        **wanted,
        "reserved": False,
        "hidden": False,
        "static": False,
        "cluster_permissions": list(reversed(wanted["cluster_permissions"])),
    }
    # Then it grants the same, and a role granting more does not
    assert role_grants(read_back) == role_grants(wanted)
    wider = {**wanted, "index_permissions": [{"index_patterns": ["*"], "allowed_actions": ["*"]}]}
    assert role_grants(wider) != role_grants(wanted)


def test_the_role_arns_are_trimmed_deduplicated_and_sorted() -> None:
    assert role_arns(settings()) == [DEDUPE, MIGRATION]


def test_a_mapping_is_created_then_left_alone_then_extended_keeping_what_others_mapped() -> None:
    arns = role_arns(settings())
    # Given no mapping yet, Then one is created with the functions' roles
    outcome, body = mapping_update(None, arns)
    assert (outcome, body) == ("created", {"backend_roles": arns, "hosts": [], "users": []})
    # Given a mapping holding them already (and an operator's user and role), Then nothing is written
    held = {"backend_roles": [MIGRATION, DEDUPE, "arn:aws:iam::123456789012:role/ops"], "hosts": [], "users": ["ops"]}
    assert mapping_update(held, arns) == ("unchanged", None)
    # Given a mapping an operator made with a user only, Then the roles are added and the user kept
    outcome, body = mapping_update({"backend_roles": [], "hosts": ["h"], "users": ["ops"]}, arns)
    assert (outcome, body) == ("updated", {"backend_roles": arns, "hosts": ["h"], "users": ["ops"]})
