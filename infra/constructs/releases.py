"""Safe releases: every function is published as a version behind the `live` alias
(functions/specs.py RELEASE_ALIAS), and a deploy that changes a function moves its alias through
CodeDeploy, which shifts traffic as the stage's `release` says (canary, linear or all at once) and
rolls back by itself when the deployment fails, is stopped, or one of the function's alarms
(infra/constructs/monitoring.py adds them) goes off while it runs.

One CodeDeploy application per stage, one deployment group per function (named like the function),
one service role for all of them. Everything that invokes a function names the alias, so traffic
reaches a version only through it.
"""

from __future__ import annotations

from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import DeploymentConfig
from infra.nag import acknowledge

ROLLBACK = codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True)


def deployment_config(release: str) -> codedeploy.ILambdaDeploymentConfig:
    """CodeDeploy's predefined configuration for a `release` value: `canary_10_percent_5_minutes`
    is LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES (CodeDeployDefault.LambdaCanary10Percent5Minutes)."""
    found = getattr(codedeploy.LambdaDeploymentConfig, release.upper(), None)
    if found is None:  # the context key is validated first; this guards the two lists drifting apart
        raise ValueError(f"release={release!r} names no CodeDeploy Lambda deployment configuration")
    return found  # type: ignore[no-any-return]


class Releases(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.deployment_config = deployment_config(config.release)
        self.application = codedeploy.LambdaApplication(self, "Application", application_name=config.name("releases"))
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
            description=f"CodeDeploy's role for the releases of {config.name('*')} functions",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSCodeDeployRoleForLambdaLimited]",
            "CodeDeploy's documented policy for Lambda deployments: it moves aliases, invokes hooks named "
            "CodeDeployHook_*, and reads the deployment group's alarms.",
        )

    def release(self, scope: Construct, alias: lambda_.Alias, name: str) -> codedeploy.LambdaDeploymentGroup:
        """The deployment group that moves this function's alias; its alarms are added by Monitoring."""
        return codedeploy.LambdaDeploymentGroup(
            scope,
            "Release",
            application=self.application,
            deployment_group_name=self.config.name(name),
            alias=alias,
            deployment_config=self.deployment_config,
            role=self.role,
            auto_rollback=ROLLBACK,
        )
