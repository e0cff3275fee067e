"""Provisioning on deploy: the `provision` function (listing_vision/provisioning.py) and the CDK
trigger that invokes it once the stores and the functions exist.

It creates what CloudFormation does not: the Milvus collection with its index (loaded), the
listings index with its mapping, and, where the domain uses fine-grained access control
(`opensearch_access: fine_grained`), the OpenSearch role of the listings index and the mapping of
the OpenSearch-facing functions' roles to it. The trigger runs on the first deploy and again on
every deploy that changes the function or its configuration (a renamed collection or index, a
function's role added or replaced); a failure fails the deploy. Rerun it by hand with
`aws lambda invoke --function-name listing-vision-<stage>-provision out.json` (README 'Provisioning').

Its role may: read the Milvus token; Scan the catalogue table and update its records (each stored
record given the key of the listing's index, once); on the listings index only, check it exists (HEAD), create it
(PUT) and read its mapping (GET _mapping); with fine-grained access control, read and write the
one role and the one role mapping it manages through the security plugin's REST API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Fn, triggers
from aws_cdk import aws_iam as iam
from constructs import Construct

from functions.specs import OPENSEARCH
from infra.constructs.platform import Platform, allow
from infra.constructs.service_function import ServiceFunction
from listing_vision.config import Settings
from listing_vision.provisioning import SECURITY_API, listings_role_name


class Provisioning(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        functions: Mapping[str, ServiceFunction],
        after: Sequence[Construct],
    ) -> None:
        super().__init__(scope, construct_id)
        config = platform.config
        self.function = platform.function(self, "provision", in_vpc=True)
        self.functions: dict[str, ServiceFunction] = {"provision": self.function}
        platform.read_secret(self.function, "milvus")
        platform.clip.grant_invoke(self.function.role)  # the collection records the endpoint's model signature
        allow(self.function, ["es:ESHttpHead", "es:ESHttpPut"], platform.opensearch_paths("{index}"))
        allow(self.function, ["es:ESHttpGet"], platform.opensearch_paths("{index}/_mapping"))
        # Stored catalogue records written before GET /images had its index: found by a Scan, each
        # given the index's key by a conditional update, the Scan's progress kept in one item
        # (listing_vision.provisioning.list_stored_images)
        allow(
            self.function,
            ["dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PutItem"],
            [platform.table_arn("catalogue_table")],
        )
        # The functions that call the listings index: their roles are what fine-grained access control maps
        self.mapped = sorted(name for name, fn in functions.items() if OPENSEARCH in fn.spec.layers)
        if config.opensearch_access == "fine_grained":
            role = listings_role_name(Settings(listings_index=config.listings_index))
            allow(
                self.function,
                ["es:ESHttpGet", "es:ESHttpPut"],
                platform.opensearch_paths(
                    f"{SECURITY_API.strip('/')}/roles/{role}", f"{SECURITY_API.strip('/')}/rolesmapping/{role}"
                ),
            )
            # The domain's master user maps this role before the first deploy: it needs a name known in advance
            cfn_role = self.function.role.node.default_child
            assert isinstance(cfn_role, iam.CfnRole)
            cfn_role.role_name = config.name("provision")
            self.function.function.add_environment("OPENSEARCH_ACCESS", "fine_grained")
            self.function.function.add_environment(
                "OPENSEARCH_ROLE_ARNS", Fn.join(",", [functions[name].role.role_arn for name in self.mapped])
            )
        self.trigger = triggers.Trigger(
            self,
            "OnDeploy",
            handler=self.function.function,
            execute_after=list(after),
            execute_on_handler_change=True,
            timeout=Duration.seconds(self.function.spec.timeout_s),
        )
