"""The review console on AWS (infra/constructs/console.py): a private bucket behind CloudFront with the
console's one Content-Security-Policy, its files and a secret-free config.json deployed into it, CORS on
the API for the console's origins only, and a Cognito user pool whose groups are the storefronts."""

from __future__ import annotations

import json
from typing import Any

from listing_vision.api.console_policy import ALLOW_HEADERS, content_security_policy
from tests.infra.conftest import EXTRA_CONSOLE_ORIGIN, Synthesized


def _one(synthesized: Synthesized, kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = synthesized.of_type(kind).items()
    return found[0], found[1]["Properties"]


def _environment(synthesized: Synthesized, function: str) -> dict[str, Any]:
    """A function's environment variables, by its name (listing-vision-<stage>-<function>)."""
    for resource in synthesized.of_type("AWS::Lambda::Function").values():
        if resource["Properties"].get("FunctionName") == synthesized.config.name(function):
            return dict(resource["Properties"]["Environment"]["Variables"])
    raise AssertionError(f"no function {function}")


def _text(synthesized: Synthesized, value: Any) -> str:
    """A template value with its intrinsic functions flattened to text (for what a string must contain)."""
    return json.dumps(synthesized.stack.resolve(value))


def test_the_console_bucket_is_private_and_read_by_its_distribution_through_origin_access_control(
    synthesized: Synthesized,
) -> None:
    # Given the synthesized stack
    bucket = synthesized.logical_id(synthesized.stack.console.bucket)
    distribution = synthesized.logical_id(synthesized.stack.console.distribution)
    props = synthesized.resources[bucket]["Properties"]
    # Then the bucket blocks every public access and takes TLS only
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    # and the distribution reads it through origin access control, answers HTTPS only, index.html at /
    config = synthesized.resources[distribution]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert "OriginAccessControlId" in origin and origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "https-only"
    assert config["DefaultRootObject"] == "index.html"
    # and CloudFront may read its objects only for that distribution (the other reader is CDK's auto-delete)
    policies = synthesized.of_type("AWS::S3::BucketPolicy").values()
    (policy,) = [p for p in policies if p["Properties"]["Bucket"] == {"Ref": bucket}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (reader,) = [s for s in statements if s["Principal"] == {"Service": "cloudfront.amazonaws.com"}]
    assert reader["Action"] == "s3:GetObject" and reader["Effect"] == "Allow"
    assert {"Ref": distribution} in reader["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Join"][1]


def test_the_distribution_sends_the_same_content_security_policy_as_the_local_stack(synthesized: Synthesized) -> None:
    # Given the response-headers policy the console's distribution uses
    name, props = _one(synthesized, "AWS::CloudFront::ResponseHeadersPolicy")
    distribution = synthesized.logical_id(synthesized.stack.console.distribution)
    behavior = synthesized.resources[distribution]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": name}
    csp = props["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["ContentSecurityPolicy"]
    assert csp["Override"] is True
    # When its policy is compared with the declaration's, with AWS's origins in it
    sent = _text(synthesized, csp["ContentSecurityPolicy"])
    local = content_security_policy()
    # Then every directive the local stack sends is there, scripts and styles from the page's origin only
    for directive in local.split("; "):
        name_of = directive.split(" ")[0]
        assert name_of in sent
    for strict in ("default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'"):
        assert strict in sent
    # and the API (API Gateway in the region) and the Cognito sign-in domain are the page's other connections
    assert "execute-api" in sent and "amazoncognito.com" in sent and "'unsafe-inline'" not in sent


def test_the_console_files_and_a_config_without_secrets_are_deployed(synthesized: Synthesized) -> None:
    # Given the BucketDeployment of the console
    (deployment,) = synthesized.of_type("Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    bucket = synthesized.logical_id(synthesized.stack.console.bucket)
    assert props["DestinationBucketName"] == {"Ref": bucket} and props["Prune"] is True
    assert props["DistributionPaths"] == ["/*"]  # the old files leave CloudFront's cache
    # When its config.json is read (the second source: its markers carry the API's URL and the pool's client)
    (config_markers,) = [m for m in props["SourceMarkers"] if m]
    config = _text(synthesized, config_markers)
    # Then it names the API's URL, the sign-in domain and the public app client, and nothing secret
    assert synthesized.logical_id(synthesized.stack.api.api) in config
    assert synthesized.logical_id(synthesized.stack.console.client) in config
    assert "secret" not in config.lower() and "lvk_" not in config
    _, client = _one(synthesized, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False


def test_people_sign_in_with_a_code_and_pkce_to_the_console_and_groups_are_the_storefronts(
    synthesized: Synthesized,
) -> None:
    # Given the user pool, its groups, domain and app client
    _, pool = _one(synthesized, "AWS::Cognito::UserPool")
    groups = {g["Properties"]["GroupName"] for g in synthesized.of_type("AWS::Cognito::UserPoolGroup").values()}
    _, client = _one(synthesized, "AWS::Cognito::UserPoolClient")
    _, domain = _one(synthesized, "AWS::Cognito::UserPoolDomain")
    # Then nobody signs themselves up, and each storefront has its group (no other group)
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert groups == set(synthesized.config.storefront_names)
    # and the client is the authorization code flow (PKCE: no secret), calling back to the console only
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    assert "implicit" not in json.dumps(client)
    console = synthesized.logical_id(synthesized.stack.console.distribution)
    assert console in json.dumps(client["CallbackURLs"]) and len(client["CallbackURLs"]) == 1
    assert "listing-vision" in json.dumps(domain["Domain"])
    # and the stack outputs the console's URL
    outputs = synthesized.template.to_json()["Outputs"]
    assert any(console in json.dumps(o["Value"]) for name, o in outputs.items() if name.startswith("ConsoleConsoleUrl"))


def test_the_authorizer_trusts_the_pool_and_people_are_metered_on_their_own_key(synthesized: Synthesized) -> None:
    # Given the authorizer function's environment and the API's keys
    env = _environment(synthesized, "authorizer")
    pool = synthesized.logical_id(synthesized.stack.console.user_pool)
    client = synthesized.logical_id(synthesized.stack.console.client)
    # Then it is told the pool's issuer and the console's client
    assert pool in _text(synthesized, env["USER_POOL_ISSUER"]) and "cognito-idp" in _text(
        synthesized, env["USER_POOL_ISSUER"]
    )
    assert client in _text(synthesized, env["USER_POOL_CLIENT_ID"])
    # and the people's key, named after the client, is in the standard usage plan
    keys = [k for k in synthesized.of_type("AWS::ApiGateway::ApiKey").values() if "lv-users-" in json.dumps(k)]
    assert len(keys) == 1
    # and the authorizer runs on every request (a key or a token: no identity source API Gateway could require)
    (authorizer,) = synthesized.of_type("AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"].get("IdentitySource") in (None, "")
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == 0


def test_cors_preflights_and_gateway_responses_name_the_console_origin_only(first_stage: Synthesized) -> None:
    # Given a stage whose context allows one more origin (the first stage's)
    extra, synthesized = EXTRA_CONSOLE_ORIGIN, first_stage
    console = synthesized.logical_id(synthesized.stack.console.distribution)
    methods = synthesized.of_type("AWS::ApiGateway::Method").values()
    preflights = [m["Properties"] for m in methods if m["Properties"]["HttpMethod"] == "OPTIONS"]
    routes = [m for m in methods if m["Properties"]["HttpMethod"] != "OPTIONS"]
    # Then every resource has a preflight, answered by API Gateway without a key
    assert len(preflights) >= 10 and all(p["AuthorizationType"] == "NONE" for p in preflights)
    assert all(not p.get("ApiKeyRequired") for p in preflights) and routes
    for preflight in preflights:
        (answer,) = preflight["Integration"]["IntegrationResponses"]
        text = _text(synthesized, answer)
        # naming the console's origin by default, the extra origin only when it asked, no wildcard
        assert console in text and extra in text and "'*'" not in text
        allowed = answer["ResponseParameters"]["method.response.header.Access-Control-Allow-Headers"]
        assert allowed == "'" + ",".join(ALLOW_HEADERS) + "'"
    # and each gateway response (a refusal before any function) names the console's origin
    for response in synthesized.of_type("AWS::ApiGateway::GatewayResponse").values():
        headers = response["Properties"]["ResponseParameters"]
        assert console in _text(synthesized, headers["gatewayresponse.header.Access-Control-Allow-Origin"])
        assert headers["gatewayresponse.header.Vary"] == "'Origin'"
    # and the functions are told the same origins, for the CORS headers of their own answers
    env = _environment(synthesized, "dedupe")
    origins = _text(synthesized, env["CONSOLE_ORIGINS"])
    assert console in origins and extra in origins
