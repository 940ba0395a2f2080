"""Which stack the console looks at: the local one (``dmhub-adapter dev``'s state file) or a
deployed one (its CloudFormation outputs, read with the operator's AWS credentials)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

#: CloudFormation outputs of template.yaml the console needs, by the environment variable they feed
STACK_OUTPUTS = {
    "IDEMPOTENCY_TABLE": "IdempotencyTableName",
    "EVENT_QUEUE_URL": "EventQueueUrl",
    "DEAD_LETTER_QUEUE_URL": "DeadLetterQueueUrl",
    "UNMAPPED_QUEUE_URL": "UnmappedQueueUrl",
    "UNMAPPED_BUCKET": "UnmappedPayloadBucketName",
    "SECRETS_PREFIX": "SecretsPrefix",
}
#: the stack parameter holding DM Hub's API root
DMHUB_PARAMETER = "DmHubBaseUrl"


class TargetError(RuntimeError):
    """The stack cannot be found or is missing something the console needs."""


@dataclass
class Target:
    """The resources the console reads, and whether it may change them."""

    mode: str  # "local" or "deployed"
    environment: dict[str, str]
    region: str
    stack_name: str
    allow_actions: bool
    #: the local gateway's URL (its request feed); None for a deployed stack
    gateway: str | None = None
    profile: str | None = None
    #: the local stack's source/account pairs (a deployed stack's come from its secrets' names)
    accounts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def deployed(self) -> bool:
        """Whether this is a deployed stack (CloudWatch metrics and alarms exist)."""
        return self.mode == "deployed"

    def apply(self) -> None:
        """Point this process's AWS clients and the runtime's settings at the stack.

        The console is a process of its own, so like ``eval "$(dmhub-adapter dev --print-env)"``
        it sets the variables the runtime reads rather than threading them through every call.
        """
        os.environ.update(self.environment)
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)
        if self.profile:
            os.environ["AWS_PROFILE"] = self.profile
        from dmhub_adapter import aws

        aws.reset_clients()

    def session(self) -> Any:
        """A boto3 session for this stack's region (and profile)."""
        import boto3

        return boto3.session.Session(region_name=self.region, profile_name=self.profile)

    def client(self, service: str) -> Any:
        """A boto3 client; the local stack's go to moto_server (``AWS_ENDPOINT_URL``)."""
        endpoint = self.environment.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        return self.session().client(service, endpoint_url=endpoint or None)


def local_target(gateway_port: int) -> Target:
    """The stack ``dmhub-adapter dev --port gateway_port`` runs (its state file)."""
    from dmhub_adapter_tools.local.stack import state_file_path

    path = state_file_path(gateway_port)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TargetError(f"no local stack on port {gateway_port} (start one with `dmhub-adapter dev`, "
                          "or give --stack NAME for a deployed one)") from exc
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read {path}: {exc}") from exc
    environment = {str(k): str(v) for k, v in (info.get("environment") or {}).items()}
    accounts = []
    for pair in info.get("webhooks") or {}:
        source, _, account = str(pair).partition("/")
        accounts.append((source, account))
    return Target(
        mode="local",
        environment=environment,
        region=environment.get("AWS_DEFAULT_REGION", "eu-west-1"),
        stack_name="local",
        allow_actions=True,
        gateway=str(info.get("gateway") or "") or None,
        accounts=accounts,
    )


def deployed_target(
    stack_name: str, *, region: str | None, profile: str | None, allow_actions: bool, endpoint_url: str | None = None
) -> Target:
    """A deployed stack found by name: its resources from ``DescribeStacks`` outputs."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(region_name=region, profile_name=profile)
        cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"cannot describe stack {stack_name!r}: {exc}") from exc
    if not stacks:
        raise TargetError(f"no stack named {stack_name!r}")
    stack = stacks[0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for name, key in STACK_OUTPUTS.items() if name != "UNMAPPED_BUCKET" and key not in outputs]
    if missing:
        raise TargetError(f"stack {stack_name!r} has no output(s) {', '.join(missing)}: is it a dmhub-adapter stack?")
    environment = {name: outputs[key] for name, key in STACK_OUTPUTS.items() if key in outputs}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    if parameters.get(DMHUB_PARAMETER):
        environment["DMHUB_BASE_URL"] = parameters[DMHUB_PARAMETER]
    if endpoint_url:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    resolved_region = session.region_name or region or "us-east-1"
    environment["AWS_DEFAULT_REGION"] = resolved_region
    return Target(
        mode="deployed",
        environment=environment,
        region=resolved_region,
        stack_name=stack_name,
        allow_actions=allow_actions,
        profile=profile,
    )
