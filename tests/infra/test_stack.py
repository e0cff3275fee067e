"""The synthesized template holds what the code needs: every declared function sized as declared,
the S3 triggers as declared, a failure queue on every asynchronous path, the existing stores
referenced (never created), stage-named resources, API Gateway's errors in the platform's shape,
and cdk-nag clean with every acknowledgement used."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from functions.routes import ROUTES
from functions.specs import BY_NAME, FUNCTIONS
from functions.triggers import s3_triggers
from infra.constructs.service_function import API_GATEWAY_LIMIT_S, API_OTHER_WORK_S, check_provider_budget
from infra.nag import acknowledgements
from listing_vision.api.gateway_responses import GATEWAY_RESPONSES
from listing_vision.config import Settings
from listing_vision.providers.worst_case import provider_worst_case_s
from listing_vision.resources import (
    BUCKETS,
    INCOMPLETE_UPLOAD_DAYS,
    JOB_RETENTION_DAYS,
    NONCURRENT_VERSION_DAYS,
    TABLES,
    buckets,
)
from tests.infra.conftest import Synthesized


def logical_ids_by_name(synthesized: Synthesized) -> dict[str, str]:
    """Physical function name → logical id, for the platform's own functions."""
    return {
        r["Properties"]["FunctionName"]: logical
        for logical, r in synthesized.of_type("AWS::Lambda::Function").items()
        if isinstance(r["Properties"].get("FunctionName"), str)
    }


def functions_by_name(synthesized: Synthesized) -> dict[str, dict]:
    found = synthesized.of_type("AWS::Lambda::Function")
    by_name = {}
    for resource in found.values():
        name = resource["Properties"].get("FunctionName")
        if isinstance(name, str) and name.startswith("listing-vision-test-"):
            by_name[name.removeprefix("listing-vision-test-")] = resource["Properties"]
    return by_name


def test_every_declared_function_exists_sized_as_declared(synthesized: Synthesized) -> None:
    # Given the declarations in functions/specs.py, when the stack is synthesized
    functions = functions_by_name(synthesized)
    # Then there is one function per declaration, with its handler, timeout and memory
    assert sorted(functions) == sorted(spec.name for spec in FUNCTIONS)
    for spec in FUNCTIONS:
        props = functions[spec.name]
        assert props["Handler"] == f"{spec.module}.lambda_handler"
        assert (props["Timeout"], props["MemorySize"]) == (spec.timeout_s, spec.memory_mb)
        assert props["Runtime"] == "python3.12" and props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == spec.name
        # and exactly its own layers, in order (base first)
        layers = [ref["Ref"] for ref in props["Layers"]]
        expected = [synthesized.logical_id(synthesized.stack.layers[name]) for name in spec.all_layers]
        assert layers == expected
    # API functions fit API Gateway's 29 s; the worker, indexer, ingest and migration get longer
    api_functions = {route.function for route in ROUTES}
    assert all(functions[name]["Timeout"] <= 29 for name in api_functions)


def test_every_function_runs_at_its_declared_concurrency(synthesized: Synthesized) -> None:
    functions = functions_by_name(synthesized)
    for spec in FUNCTIONS:
        assert functions[spec.name].get("ReservedConcurrentExecutions") == spec.reserved_concurrency, spec.name
    # Every function not behind the API is capped, so no backfill, migration or burst of S3 events can
    # take the account's concurrency from the API functions
    api = {route.function for route in ROUTES} | {"authorizer"}
    assert all(spec.reserved_concurrency for spec in FUNCTIONS if spec.name not in api)
    # and a stage reserves little enough for a second stage in an account of 1,000 (Lambda keeps 100 unreserved)
    reserved = sum(spec.reserved_concurrency or 0 for spec in FUNCTIONS)
    assert 2 * reserved <= 1000 - 100
    deploying = (Path(__file__).parents[2] / "docs" / "deploying.md").read_text()
    assert f"A stage reserves {reserved} executions" in deploying
    # and the migration's Map never runs more batches than its function may run
    migration = next(spec for spec in FUNCTIONS if spec.name == "migration")
    assert synthesized.config.migration_max_concurrency <= (migration.reserved_concurrency or 0)


def test_an_api_function_that_asks_a_model_answers_within_api_gateways_29_s(synthesized: Synthesized) -> None:
    # Given the caption function (an API route whose code asks a model) as deployed
    variables = functions_by_name(synthesized)["caption"]["Environment"]["Variables"]
    timeout_s, retries = float(variables["PROVIDER_TIMEOUT_S"]), int(variables["PROVIDER_MAX_RETRIES"])
    # Then a reply and its repair, in the worst case its settings allow, leave time for the rest
    assert provider_worst_case_s(timeout_s, retries) <= API_GATEWAY_LIMIT_S - API_OTHER_WORK_S
    # and no SDK retry, which could wait out a 429's retry-after of up to 2 minutes
    assert retries == 0


def test_a_synchronous_generation_answers_within_api_gateways_29_s_and_under_its_duration_alarm() -> None:
    # Given the generation API function and the longest its request may wait for a job
    generate = BY_NAME["generate"]
    field = Settings.model_fields["generation_sync_wait_s"]
    longest_s = max(m.le for m in field.metadata if getattr(m, "le", None) is not None)
    # Then even the longest wait allowed, with the submission's own work, ends before API Gateway cuts it
    assert longest_s + 1 < min(generate.timeout_s, API_GATEWAY_LIMIT_S)
    # and the default wait plus a second of submitting stays under the p95-duration alarm (80 % of the timeout)
    assert field.default + 1 <= 0.8 * generate.timeout_s


def test_a_provider_budget_over_api_gateways_limit_stops_the_synth() -> None:
    # Given the caption function with the library's default provider settings (8 s, 2 retries)
    with pytest.raises(ValueError, match=r"caption: a model answer may take 528 s .* over the 24 s"):
        check_provider_budget(replace(BY_NAME["caption"], settings=()))
    # while functions that are not behind the API may take their time
    check_provider_budget(BY_NAME["listing-ingest"])


def test_each_function_has_its_own_role_and_log_group_with_retention(synthesized: Synthesized) -> None:
    functions = functions_by_name(synthesized)
    assert len({str(props["Role"]) for props in functions.values()}) == len(FUNCTIONS)
    groups = synthesized.of_type("AWS::Logs::LogGroup")
    assert all("RetentionInDays" in group["Properties"] for group in groups.values())
    # Every function logs to one of those, CDK's own (bucket notifications, auto-delete) included
    for logical, function in synthesized.of_type("AWS::Lambda::Function").items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {})
        assert target.get("Ref") in groups, f"{logical} logs to a group without retention"
    # and so does the endpoint
    endpoint_groups = [g for g in groups.values() if "/aws/sagemaker/Endpoints/" in json.dumps(g)]
    assert endpoint_groups and all("RetentionInDays" in g["Properties"] for g in endpoint_groups)


def test_buckets_expire_what_the_declarations_say(synthesized: Synthesized) -> None:
    # Given the lifecycle declarations of listing_vision.resources, which the local stack applies too
    storage = synthesized.stack.storage
    for spec in buckets(synthesized.config.storefront_names):
        bucket = synthesized.resources[synthesized.logical_id(storage.buckets[spec.name_setting])]
        rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
        # Then every created bucket drops old versions and abandoned multipart uploads
        catch_all = rules["old-versions-and-abandoned-uploads"]
        assert catch_all["NoncurrentVersionExpiration"]["NoncurrentDays"] == NONCURRENT_VERSION_DAYS
        assert catch_all["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == INCOMPLETE_UPLOAD_DAYS
        assert bucket["Properties"]["VersioningConfiguration"]["Status"] == "Enabled"
        # and expires exactly the declared objects, filtered by prefix and tags
        assert set(rules) == {"old-versions-and-abandoned-uploads", *(e.rule_id for e in spec.expiries)}
        for expiry in spec.expiries:
            rule = rules[expiry.rule_id]
            assert rule["ExpirationInDays"] == expiry.days and rule["Status"] == "Enabled"
            assert rule.get("Prefix", "") == expiry.prefix
            assert {(t["Key"], t["Value"]) for t in rule.get("TagFilters", [])} == set(expiry.tags)
    # Storefronts expire only duplicate and invalid uploads and second posts of a spent upload form,
    # never a catalogue photo; generated images outlive the job that answers their URLs
    storefront = {e.rule_id: e for e in next(s for s in buckets(["alya"]) if s.name_setting == "alya_bucket").expiries}
    assert {e.tags for e in storefront.values()} == {
        (("dedupe-status", "duplicate"),),
        (("dedupe-status", "invalid"),),
        (("dedupe-status", "form_reused"),),
    }
    assert all(e.prefix == "incoming/" for e in storefront.values())
    generated = next(s for s in BUCKETS if s.name_setting == "generated_bucket").expiries
    assert [e.days for e in generated] == [JOB_RETENTION_DAYS + 1]


def test_every_asynchronous_path_retries_on_purpose_and_ends_in_a_failure_queue(synthesized: Synthesized) -> None:
    configs = synthesized.of_type("AWS::Lambda::EventInvokeConfig")
    queues = synthesized.of_type("AWS::SQS::Queue")
    queue_names = {q["Properties"]["QueueName"]: name for name, q in queues.items()}
    asynchronous = [spec for spec in FUNCTIONS if spec.asynchronous]
    assert len(configs) == len(asynchronous) >= 3
    functions = logical_ids_by_name(synthesized)
    for spec in asynchronous:
        function_id = functions[f"listing-vision-test-{spec.name}"]
        (config,) = [
            c["Properties"] for c in configs.values() if c["Properties"]["FunctionName"] == {"Ref": function_id}
        ]
        # set on the alias, the qualifier every invoker names (a $LATEST setting would not apply to it)
        alias_id = synthesized.logical_id(synthesized.stack.functions[spec.name].alias)
        assert config["Qualifier"] == {"Fn::Select": [7, {"Fn::Split": [":", {"Ref": alias_id}]}]}
        assert config["MaximumRetryAttempts"] == spec.asynchronous.retry_attempts
        assert config["MaximumEventAgeInSeconds"] == spec.asynchronous.max_event_age_s
        queue_id = queue_names[f"listing-vision-test-{spec.failure_queue}"]
        assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_s3_triggers_are_exactly_the_declared_ones(synthesized: Synthesized) -> None:
    storage = synthesized.stack.storage
    bucket_setting = {synthesized.logical_id(b): s for s, b in storage.buckets.items() if b.node.default_child}
    # Each notification invokes the function's alias (the released version), never $LATEST
    spec_of = {synthesized.logical_id(fn.alias): name for name, fn in synthesized.stack.functions.items()}
    wired = set()
    for resource in synthesized.of_type("Custom::S3BucketNotifications").values():
        bucket = bucket_setting[resource["Properties"]["BucketName"]["Ref"]]
        for config in resource["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]:
            rules = {r["Name"]: r["Value"] for r in config.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
            target = spec_of[config["LambdaFunctionArn"]["Ref"]]
            wired.add((bucket, target, tuple(config["Events"]), rules.get("prefix", ""), rules.get("suffix", "")))
    triggers = s3_triggers(synthesized.config.storefront_names)
    declared = {(t.bucket_setting, t.function, t.events, t.prefix, t.suffix) for t in triggers}
    assert wired == declared
    # Generated outputs have their own bucket, which triggers nothing: they are never indexed
    assert "generated_bucket" not in {bucket for bucket, *_ in wired}


def test_existing_stores_are_referenced_not_created(synthesized: Synthesized) -> None:
    # The vision-cache table is the account's own: no table with its key is created
    tables = synthesized.of_type("AWS::DynamoDB::Table")
    keys = {t["Properties"]["KeySchema"][0]["AttributeName"] for t in tables.values()}
    assert "image_url" not in keys
    assert len(tables) == len([t for t in TABLES if t.existing == "never"])
    # and every function is told its name, the OpenSearch endpoint and Milvus from context
    for props in functions_by_name(synthesized).values():
        variables = props["Environment"]["Variables"]
        assert variables["VISION_CACHE_TABLE"] == "hearth-vision-cache"
        assert variables["OPENSEARCH_URL"] == "https://search-listings-q7x3k2.us-east-1.es.amazonaws.com"
        assert variables["MILVUS_CLIENT_URI"] == "https://milvus.acme.net:19530"
        assert variables["SAGEMAKER_ENDPOINT_NAME"] == "listing-vision-test-clip"
    # and nothing in the template is a placeholder
    text = json.dumps(synthesized.template.to_json())
    assert "example.internal" not in text and "123456789012" not in text


def test_named_resources_carry_the_stage(synthesized: Synthesized) -> None:
    named = [
        *(r["Properties"]["TableName"] for r in synthesized.of_type("AWS::DynamoDB::Table").values()),
        *(
            r["Properties"]["FunctionName"]
            for r in synthesized.of_type("AWS::Lambda::Function").values()
            if "FunctionName" in r["Properties"]
        ),
        *(r["Properties"]["QueueName"] for r in synthesized.of_type("AWS::SQS::Queue").values()),
        *(
            r["Properties"]["StateMachineName"]
            for r in synthesized.of_type("AWS::StepFunctions::StateMachine").values()
        ),
        *(r["Properties"]["EndpointName"] for r in synthesized.of_type("AWS::SageMaker::Endpoint").values()),
    ]
    assert named and all(name.startswith("listing-vision-test-") for name in named)


def test_api_gateway_errors_have_the_platform_error_shape(synthesized: Synthesized) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in synthesized.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    for declared in GATEWAY_RESPONSES:
        props = responses[declared.response_type]
        template = props["ResponseTemplates"]["application/json"]
        assert f'"code": "{declared.code}"' in template and "$context.requestId" in template
        assert props.get("StatusCode") == (str(declared.status) if declared.status else None)
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"  # an unknown route, as locally


def test_the_api_publishes_its_openapi_document_verbatim_to_clients_with_a_key(synthesized: Synthesized) -> None:
    # Given the document generated from the handlers
    from functions.openapi import document

    # When API Gateway answers GET /openapi.json from its mock integration
    resources = synthesized.of_type("AWS::ApiGateway::Resource")
    (docs_resource,) = [logical for logical, r in resources.items() if r["Properties"]["PathPart"] == "openapi.json"]
    (method,) = [
        r["Properties"]
        for r in synthesized.of_type("AWS::ApiGateway::Method").values()
        if r["Properties"]["ResourceId"] == {"Ref": docs_resource} and r["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    body = method["Integration"]["IntegrationResponses"][0]["ResponseTemplates"]["application/json"]
    # Then Velocity has nothing to interpret in it, and any JSON reader gets the document back
    assert "$" not in body and "#" not in body
    assert json.loads(body) == document()
    assert method["Integration"]["Type"] == "MOCK" and method["HttpMethod"] == "GET"
    # and it is behind the same authorizer as every route
    assert method["AuthorizationType"] == "CUSTOM" and method["ApiKeyRequired"] is True


def test_the_endpoint_refuses_cpu_and_only_embedding_functions_may_invoke_it(synthesized: Synthesized) -> None:
    (model,) = synthesized.of_type("AWS::SageMaker::Model").values()
    environment = model["Properties"]["PrimaryContainer"]["Environment"]
    assert environment["CLIP_ALLOW_CPU"] == "false" and environment["SAGEMAKER_PROGRAM"] == "inference.py"
    (config,) = synthesized.of_type("AWS::SageMaker::EndpointConfig").values()
    assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == "ml.g5.xlarge"
    # its 4 vCPUs serve as 2 model-server processes of 2 host threads (one process's GIL caps its host path)
    assert (environment["SAGEMAKER_MODEL_SERVER_WORKERS"], environment["CLIP_HOST_THREADS"]) == ("2", "2")
    roles_of = {}
    for resource in synthesized.of_type("AWS::Lambda::Function").values():
        name = resource["Properties"].get("FunctionName", "")
        roles_of[resource["Properties"]["Role"]["Fn::GetAtt"][0]] = name.removeprefix("listing-vision-test-")
    invokers = set()
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any(s["Action"] == "sagemaker:InvokeEndpoint" for s in statements):
            invokers.update(roles_of.get(r["Ref"], r["Ref"]) for r in policy["Properties"]["Roles"])
    # (provision asks it which model it serves: the collection records that)
    assert invokers == {
        "dedupe",
        "dedupe-indexer",
        "dedupe-backfill",
        "dedupe-reconcile",
        "caption",
        "listing-ingest",
        "provision",
    }


def test_migration_state_machine_fans_out_with_a_distributed_map(synthesized: Synthesized) -> None:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    definition = json.loads(resolve_join(machine["Properties"]["DefinitionString"]))
    assert definition["States"]["Operation"]["Choices"][0]["Next"] == "Plan"
    fan_out = definition["States"]["Fan out batches"]
    assert fan_out["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert fan_out["ItemReader"]["Parameters"]["Key.$"] == "$.plan.manifest.key"
    assert fan_out["MaxConcurrency"] == 10
    batch = fan_out["ItemProcessor"]["States"]["Migrate batch"]
    assert "Throttled" in batch["Retry"][0]["ErrorEquals"] and batch["Retry"][0]["BackoffRate"] == 2


def test_the_migration_runs_at_the_stages_sizing(synthesized: Synthesized) -> None:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    definition = json.loads(resolve_join(machine["Properties"]["DefinitionString"]))
    config = synthesized.config
    # Given a stage that sizes the migration to its domain (batches of 200, bulks of 50)
    assert (config.migration_batch_size, config.migration_bulk_size) == (200, 50)
    # Then the Map runs the stage's concurrency, and Plan cuts the stage's batches and bulks
    assert definition["States"]["Fan out batches"]["MaxConcurrency"] == config.migration_max_concurrency
    payload = definition["States"]["Plan"]["Parameters"]
    assert (payload["batch_size"], payload["bulk_size"]) == (200, 50)


def test_a_batch_whose_function_died_is_retried(synthesized: Synthesized) -> None:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    definition = json.loads(resolve_join(machine["Properties"]["DefinitionString"]))
    batch = definition["States"]["Fan out batches"]["ItemProcessor"]["States"]["Migrate batch"]
    # A batch whose function died between two writes (as Lambda reports it) is retried, not caught
    died = {"Runtime.ExitError", "Sandbox.Timedout", "Lambda.Unknown", "Lambda.ClientExecutionTimeoutException"}
    assert died <= set(batch["Retry"][0]["ErrorEquals"])
    assert batch["Retry"][0]["MaxAttempts"] >= 2


def test_the_migrations_failure_tolerance_can_trip(synthesized: Synthesized) -> None:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    fan_out = json.loads(resolve_join(machine["Properties"]["DefinitionString"]))["States"]["Fan out batches"]
    # The Map tolerates the stage's share of failed child executions (moto ignores it, so it is asserted here)
    assert fan_out["ToleratedFailurePercentage"] == synthesized.config.migration_tolerated_failure_percentage == 5
    # and a batch that fails every retry is recorded, then fails its child execution: what that share counts
    states = fan_out["ItemProcessor"]["States"]
    (catch,) = states["Migrate batch"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "Record failed batch"
    recorded = states["Record failed batch"]
    assert recorded["Next"] == "Batch failed" and "End" not in recorded
    assert (states["Batch failed"]["Type"], states["Batch failed"]["Error"]) == ("Fail", "BatchFailed")
    # and no state of a batch ends it successfully after a failure
    assert [name for name, state in states.items() if state.get("End")] == ["Migrate batch"]


@pytest.mark.parametrize("stage", ["synthesized", "first_stage"])
def test_cdk_nag_is_clean_and_every_acknowledgement_is_used(stage: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synthesized = request.getfixturevalue(stage)
    (nag,) = [p for p in synthesized.report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    # The synth would have failed on any unacknowledged finding; here, nothing is left
    assert nag["violations"] == []
    used = {(s["acknowledgedAt"], s["acknowledgedId"].split("::", 1)[1]) for s in nag["suppressedViolations"]}
    made_here = acknowledgements(synthesized.stack)
    made = {(a.path, a.finding) for a in made_here}
    # Every acknowledgement is scoped below the stack (never the stack itself) and matches a finding
    assert made and all(path != synthesized.name for path, _ in made)
    assert made - used == set(), "acknowledgements for findings that do not fire"
    assert all(a.reason.strip() for a in made_here)


def test_cdk_json_points_at_the_app() -> None:
    config = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())
    assert config["app"].endswith("-m infra.app")


def resolve_join(value):
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(p if isinstance(p, str) else "X" for p in parts)
    return value


def test_model_server_processes_are_sized_from_the_instance_type() -> None:
    from infra.constructs.clip_endpoint import model_server_layout

    # GPU instances: a worker per 2 vCPUs; CPU instances, where the model shares the cores: one per vCPU
    assert model_server_layout("ml.g5.4xlarge") == (8, 2)
    assert model_server_layout("ml.g5.4xlarge", workers=4) == (4, 4)
    assert model_server_layout("ml.c5.large") == (2, 1)
    assert model_server_layout("ml.c6i.xlarge") == (4, 1)
    assert model_server_layout("ml.p5.48xlarge") == (1, 0)  # not in the table: one thread per vCPU


def test_the_catalogue_is_reconciled_hourly_and_an_alarm_says_when_it_needed_repairs(
    synthesized: Synthesized,
) -> None:
    # Given the synthesized stack, then a schedule invokes the reconcile function every hour with `{}`
    # (every storefront, repairing), which the function's own event model accepts
    from listing_vision.jewelry.reconcile import ReconcileRequest

    (rule,) = [r for r in synthesized.of_type("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    (target,) = rule["Properties"]["Targets"]
    ReconcileRequest.model_validate_json(target["Input"])
    # (its alias: the released version)
    reconcile = synthesized.logical_id(synthesized.stack.functions["dedupe-reconcile"].alias)
    assert target["Arn"] == {"Ref": reconcile}
    # And an alarm fires on any finding the reconcile reports
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    (repairs,) = [a for a in alarms if a.get("MetricName") == "ReconcileFindings"]
    assert repairs["Dimensions"] == [{"Name": "service", "Value": "dedupe-reconcile"}] and repairs["Threshold"] == 1


def test_a_calibrated_retrieval_threshold_is_set_in_every_functions_environment(first_stage: Synthesized) -> None:
    # Given a stage whose context file holds the threshold `python -m evaluation.calibrate --stage-file` wrote
    # (the first stage's)
    from tests.infra.conftest import CALIBRATED_THRESHOLD

    synthesized = first_stage
    # When it is synthesized, then every function gets it as RETRIEVAL_THRESHOLD
    functions = synthesized.of_type("AWS::Lambda::Function")
    environments = [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions.values()]
    dedupe = [env for env in environments if "SAGEMAKER_ENDPOINT_NAME" in env]
    assert dedupe and all(env.get("RETRIEVAL_THRESHOLD") == str(CALIBRATED_THRESHOLD) for env in dedupe)


def test_every_indexer_may_copy_an_inbox_upload_into_the_catalogue_and_nowhere_else(synthesized: Synthesized) -> None:
    # Given the synthesized roles, in the local stack's names
    from infra.constructs.dedupe import INDEXERS
    from local.call_recorder import Call
    from tests.infra.iam import RolePolicies

    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())

    def may(function: str, action: str, key: str) -> bool:
        call = Call(function, action, f"arn:aws:s3:::alyaimg/{key}")
        return any(grant.allows(call) for grant in policies.grants(function))

    # Then the S3-triggered indexer, the backfill and the reconcile may write a photo's catalogue copy
    # (a presigned upload is catalogued by copy from its inbox), but write nothing else of a storefront
    for function in INDEXERS:
        assert may(function, "s3:PutObject", "catalogue/ab/" + "ab" * 32 + ".jpg"), function
        assert not may(function, "s3:PutObject", "incoming/" + "0" * 32 + ".jpg"), function
        assert not may(function, "s3:DeleteObject", "catalogue/ab/" + "ab" * 32 + ".jpg"), function
