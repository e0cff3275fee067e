"""The catalogue's lifecycle as deployed: GET /images and DELETE /images/{image_id} are keyed methods
integrated with the dedupe function's released version; that function may delete photos only under
the storefronts' catalogue/ prefix and may Scan no table (the listing queries an index); a photo deleted
in a storefront bucket notifies the indexer (ObjectRemoved), which may remove records but no object.
The table's indexes, verdicts (GET /verdicts) and images (GET /images), are the same on AWS as
locally, and only the API queries them."""

from __future__ import annotations

import json

from functions.routes import ROUTES
from functions.triggers import s3_triggers
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.resources import IMAGES_BY_WEBSITE, TABLES, VERDICTS_BY_WEBSITE
from local.call_recorder import ACCOUNT_ID, REGION, Call
from local.stack import LocalStack
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies

PHOTO_KEY = "catalogue/ab/" + "ab" * 32 + ".jpg"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/image-catalogue"


def test_the_catalogue_routes_are_keyed_methods_of_the_dedupe_functions_live_alias(synthesized: Synthesized) -> None:
    # Given the declared routes and the API's resources
    declared = {(r.method, r.path): r.function for r in ROUTES if r.path in ("/images", "/images/{image_id}")}
    assert declared == {
        ("GET", "/images"): "dedupe",
        ("GET", "/images/{image_id}"): "dedupe",  # a private link (IMAGE_LINKS=private): 302 to the photo
        ("DELETE", "/images/{image_id}"): "dedupe",
    }
    resources = synthesized.of_type("AWS::ApiGateway::Resource")
    (images,) = [  # /images, under the API's root (not /jobs/{job_id}/images)
        logical
        for logical, r in resources.items()
        if r["Properties"]["PathPart"] == "images" and "Fn::GetAtt" in r["Properties"]["ParentId"]
    ]
    (image,) = [
        logical
        for logical, r in resources.items()
        if r["Properties"]["PathPart"] == "{image_id}" and r["Properties"]["ParentId"] == {"Ref": images}
    ]
    methods = {
        (r["Properties"]["HttpMethod"], r["Properties"]["ResourceId"]["Ref"]): r["Properties"]
        for r in synthesized.of_type("AWS::ApiGateway::Method").values()
        if isinstance(r["Properties"].get("ResourceId"), dict)
        and r["Properties"]["HttpMethod"] != "OPTIONS"  # CORS preflights (test_console_infra.py)
    }
    alias = synthesized.logical_id(synthesized.stack.functions["dedupe"].alias)
    # Then each is behind the key authorizer and invokes the dedupe function's released version
    for key in (("GET", images), ("GET", image), ("DELETE", image)):
        method = methods[key]
        assert method["AuthorizationType"] == "CUSTOM" and method["ApiKeyRequired"], key
        assert alias in json.dumps(method["Integration"]["Uri"]), key


def test_the_api_deletes_photos_only_under_catalogue_and_scans_no_table(synthesized: Synthesized) -> None:
    # Given the synthesized roles, in the local stack's names
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())

    def may(function: str, action: str, resource: str) -> bool:
        return any(grant.allows(Call(function, action, resource)) for grant in policies.grants(function))

    # Then the API may delete a stored photo of either storefront under catalogue/, and nothing else
    for bucket in ("alyaimg", "blyskimg"):
        assert may("dedupe", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/{PHOTO_KEY}"), bucket
        for key in ("console/ring.jpg", "incoming/" + "0" * 32, "bulk/catalogue/x.jpg", "catalogue"):
            assert not may("dedupe", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/{key}"), (bucket, key)
    assert not may("dedupe", "s3:DeleteObject", f"arn:aws:s3:::generated/{PHOTO_KEY}")
    # And it may delete the catalogue's records, but scan no table: GET /images queries its index
    assert may("dedupe", "dynamodb:DeleteItem", TABLE)
    assert may("dedupe", "dynamodb:Query", f"{TABLE}/index/{IMAGES_BY_WEBSITE.name}")
    for table in (TABLE, f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/jobs"):
        assert not may("dedupe", "dynamodb:Scan", table), table
    # While the reconciler (every record of a storefront) and the deploy's provisioning (records stored
    # before the images index, given its key) scan the catalogue table
    assert may("dedupe-reconcile", "dynamodb:Scan", TABLE)
    assert may("provision", "dynamodb:Scan", TABLE) and may("provision", "dynamodb:UpdateItem", TABLE)
    # While the indexer, told of a photo deleted in S3, removes its record but may delete no photo
    assert may("dedupe-indexer", "dynamodb:DeleteItem", TABLE) and may("dedupe-indexer", "dynamodb:UpdateItem", TABLE)
    for bucket in ("alyaimg", "blyskimg"):
        assert not may("dedupe-indexer", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/{PHOTO_KEY}"), bucket


def test_a_photo_deleted_in_either_storefront_bucket_notifies_the_indexer(synthesized: Synthesized) -> None:
    # Given the declared triggers (the template holds exactly these: test_stack.py checks it)
    triggers = s3_triggers(synthesized.config.storefront_names)
    removed = {(t.bucket_setting, t.function, t.prefix) for t in triggers if t.events == ("s3:ObjectRemoved:*",)}
    # Then every removal in either storefront bucket, under any key, reaches the indexer
    assert removed == {("alya_bucket", "dedupe-indexer", ""), ("blysk_bucket", "dedupe-indexer", "")}
    # And the template wires them so
    wired = [
        config
        for resource in synthesized.of_type("Custom::S3BucketNotifications").values()
        for config in resource["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
        if config["Events"] == ["s3:ObjectRemoved:*"]
    ]
    assert len(wired) == 2 and all("Filter" not in config for config in wired)


def test_the_catalogue_tables_indexes_are_the_same_on_aws_as_locally_and_only_the_api_queries_them(
    synthesized: Synthesized, local_stack: LocalStack
) -> None:
    # Given the synthesized catalogue table and the local stack's
    table = synthesized.logical_id(synthesized.stack.storage.tables["catalogue_table"])
    properties = synthesized.resources[table]["Properties"]
    local = aws.client("dynamodb").describe_table(TableName=get_settings().catalogue_table)["Table"]
    # Then both have the two declared indexes, each a string then a number: website then recorded_at
    # (verdicts, every attribute projected), listed_website then created_at (stored images: what a
    # listing shows, never the records' verification features)
    declared = next(spec.indexes for spec in TABLES if spec.name_setting == "catalogue_table")
    assert declared == (VERDICTS_BY_WEBSITE, IMAGES_BY_WEBSITE)
    for indexes, attributes in (
        (properties["GlobalSecondaryIndexes"], properties["AttributeDefinitions"]),
        (local["GlobalSecondaryIndexes"], local["AttributeDefinitions"]),
    ):
        keys = {
            index["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] for index in indexes
        }
        assert keys == {
            "website-recorded": [("website", "HASH"), ("recorded_at", "RANGE")],
            "listed-created": [("listed_website", "HASH"), ("created_at", "RANGE")],
        }
        projections = {
            index["IndexName"]: (
                index["Projection"]["ProjectionType"],
                sorted(index["Projection"].get("NonKeyAttributes", [])),
            )
            for index in indexes
        }
        assert projections == {
            "website-recorded": ("ALL", []),
            "listed-created": ("INCLUDE", ["image_name", "path", "status"]),
        }
        types = {a["AttributeName"]: a["AttributeType"] for a in attributes}
        assert types == {
            "content_id": "S",
            "website": "S",
            "recorded_at": "N",
            "listed_website": "S",
            "created_at": "N",
        }
    # And the API (GET /verdicts, GET /images) may query those indexes and nothing else; no other
    # function queries the catalogue
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    queries = {
        function: {g.resource for g in policies.grants(function) if g.action == "dynamodb:Query"}
        for function in synthesized.stack.functions
    }
    assert {f: arns for f, arns in queries.items() if any("image-catalogue" in arn for arn in arns)} == {
        "dedupe": {f"{TABLE}/index/website-recorded", f"{TABLE}/index/listed-created"}
    }
