"""Log retention for every function in a stack, CDK's own included.

The platform's functions get a log group with a retention from `ServiceFunction`. CDK adds
functions of its own (the bucket-notifications handler, the auto-delete-objects provider) whose
logs would go to groups Lambda creates on first use, kept forever. Each of those is given a log
group with the same retention, through its `LoggingConfig`.
"""

from __future__ import annotations

from aws_cdk import CfnResource, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

RETENTION = logs.RetentionDays.ONE_MONTH


def retain_function_logs(stack: Stack, removal: RemovalPolicy) -> list[logs.LogGroup]:
    """Give each function of the stack that has no log group of its own one with RETENTION."""
    added = []
    for node in stack.node.find_all():
        if not isinstance(node, CfnResource) or node.cfn_resource_type != "AWS::Lambda::Function":
            continue
        if isinstance(node, lambda_.CfnFunction) and node.logging_config is not None:
            continue  # a ServiceFunction: its own group already
        scope = node.node.scope
        assert isinstance(scope, Construct)
        group = logs.LogGroup(scope, f"{node.node.id}Logs", retention=RETENTION, removal_policy=removal)
        node.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
        added.append(group)
    return added
