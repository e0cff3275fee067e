"""Every table declared with a TTL attribute (listing_vision.resources, the one declaration the local
stack's provisioning reads too) has it enabled in the synthesized template: the rate-limit table's
daily edit quotas expire as the local stack's do."""

from __future__ import annotations

from listing_vision.resources import TABLES
from tests.infra.conftest import Synthesized


def test_each_declared_ttl_is_enabled_in_the_template(synthesized: Synthesized) -> None:
    # Given the synthesized stack's tables, by the name the stage gives each
    tables = {
        t["Properties"]["TableName"]: t["Properties"] for t in synthesized.of_type("AWS::DynamoDB::Table").values()
    }
    declared = {spec.name_setting: spec.ttl_attribute for spec in TABLES}
    # Then the rate-limit table's items (the daily edit quotas) expire by `expires_at`
    assert declared["rate_limit_table"] == "expires_at"
    (rate_limits,) = [t for name, t in tables.items() if name.endswith("-rate-limit")]
    assert rate_limits["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # And every table declared with a TTL has it enabled
    expiring = [t for t in tables.values() if "TimeToLiveSpecification" in t]
    assert len(expiring) == sum(1 for ttl in declared.values() if ttl)
