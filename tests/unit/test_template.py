"""template.yaml: the lint (SAM expansion + cfn-lint) and the properties the stack must keep.

The checks run on the expanded template, i.e. what CloudFormation deploys, so SAM's own
additions (generated roles, managed policies, permissions) are inside what is checked.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dmhub_adapter.settings import DEFAULT_DMHUB_BASE_URL, DEFAULT_SECRETS_PREFIX
from dmhub_adapter.store.claims import KEY, TTL_ATTRIBUTE

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

BRIEF_ENV = (
    "IDEMPOTENCY_TABLE",
    "EVENT_QUEUE_URL",
    "UNMAPPED_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "DMHUB_BASE_URL",
    "SECRETS_PREFIX",
    "DEDUP_TTL_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
)
BRIEF_ROUTES = (
    ("GET", "/webhooks/wechat/demo"),
    ("POST", "/webhooks/wechat/demo"),
    ("POST", "/webhooks/taobao/shop-1"),
    ("POST", "/webhooks/anything/tenant-a"),
)
# Actions AWS offers no resource-level permission for, so "*" is the only valid resource.
STAR_ONLY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# What the Lambda runtime ships; the layer must not need to carry them.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
FOURTEEN_DAYS = 14 * 24 * 3600


def _load_lint_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_template", ROOT / "scripts" / "lint_template.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def lint() -> ModuleType:
    return _load_lint_module()


@pytest.fixture(scope="session")
def linted(lint: ModuleType) -> tuple[Any, dict[str, Any]]:
    report, expanded = lint.lint_template(TEMPLATE)
    return report, expanded


@pytest.fixture(scope="session")
def sam(lint: ModuleType) -> dict[str, Any]:
    parsed: dict[str, Any] = lint.parse_template(TEMPLATE.read_text(encoding="utf-8"))
    return parsed


@pytest.fixture(scope="session")
def resources(linted: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    expanded: dict[str, Any] = linted[1]["Resources"]
    return expanded


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def getatt(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(resources: dict[str, Any], function: str) -> tuple[str, dict[str, Any]]:
    role = resources[function]["Properties"]["Role"]
    assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{function} must use a role of this template"
    name = role["Fn::GetAtt"][0]
    return name, resources[name]


def statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def allowed(role: dict[str, Any], action: str) -> list[Any]:
    """Resources an Allow statement grants ``action`` on."""
    found: list[Any] = []
    for statement in statements(role):
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"]):
            found.extend(as_list(statement["Resource"]))
    return found


def denied(role: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in statements(role) if s["Effect"] == "Deny" and action in as_list(s["Action"])]


# ------------------------------------------------------------------------------- lint


def test_lint_reports_no_errors_and_no_warnings(linted: tuple[Any, dict[str, Any]]) -> None:
    report, expanded = linted
    assert [str(f) for f in report.errors] == []
    assert [str(f) for f in report.warnings] == []
    assert not report.failed(strict=True)
    # The expansion really ran: SAM resources became plain CloudFormation.
    types = {res["Type"] for res in expanded["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert {"AWS::Lambda::EventSourceMapping", "AWS::ApiGatewayV2::Api", "AWS::Lambda::LayerVersion"} <= types


@pytest.mark.parametrize(
    ("original", "typo", "rule"),
    [
        # Both pass plain cfn-lint on the SAM template; only the expansion exposes them.
        ("[ReportBatchItemFailures]", "[ReportBatchItemFailure]", "E3030"),
        ("Queue: !GetAtt EventQueue.Arn", "Queue: !GetAtt EventQueue.Arnn", "E1010"),
    ],
    ids=["response-type", "getatt-attribute"],
)
def test_a_typo_inside_a_sam_resource_fails_the_lint(
    lint: ModuleType, tmp_path: Path, original: str, typo: str, rule: str
) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.count(original) == 1
    mutated = tmp_path / "template.yaml"
    mutated.write_text(text.replace(original, typo), encoding="utf-8")

    report, _ = lint.lint_template(mutated, regions=["us-east-1"], stages=["expanded"])

    assert report.failed()
    assert rule in {f.rule for f in report.errors}


def test_an_unknown_sam_event_property_fails_the_expansion(
    lint: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.count("BatchSize: !Ref SenderBatchSize") == 1
    mutated = tmp_path / "template.yaml"
    mutated.write_text(text.replace("BatchSize: !Ref", "BatchSze: !Ref"), encoding="utf-8")

    with pytest.raises(lint.ExpansionError, match="BatchSze"):
        lint.lint_template(mutated, regions=["us-east-1"])
    assert lint.main([str(mutated)]) == 2
    assert "BatchSze" in capsys.readouterr().err


# ------------------------------------------------------------------------------- functions


def test_functions_run_python313_x86_64_with_the_shared_layer(resources: dict[str, Any]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    assert set(functions) == {"IngestFunction", "SenderFunction"}
    layers = of_type(resources, "AWS::Lambda::LayerVersion")
    assert len(layers) == 1
    (layer_id,) = layers
    assert layers[layer_id]["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["x86_64"]
        assert properties["Handler"] == "app.lambda_handler"
        assert properties["Layers"] == [ref(layer_id)]
        assert properties["TracingConfig"] == {"Mode": ref("TracingMode")}
        tracer_off = properties["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"]
        assert tracer_off == {"Fn::If": ["TracingOff", "true", "false"]}


def test_both_functions_get_the_briefs_environment(resources: dict[str, Any]) -> None:
    expected_refs = {
        "IDEMPOTENCY_TABLE": ref("IdempotencyTable"),
        "EVENT_QUEUE_URL": ref("EventQueue"),
        "UNMAPPED_QUEUE_URL": ref("UnmappedQueue"),
        "DEAD_LETTER_QUEUE_URL": ref("DeadLetterQueue"),
        "DMHUB_BASE_URL": ref("DmHubBaseUrl"),
        "SECRETS_PREFIX": ref("SecretsPrefix"),
        "DEDUP_TTL_DAYS": ref("DedupTtlDays"),
        "LOG_LEVEL": ref("LogLevel"),
    }
    for name in ("IngestFunction", "SenderFunction"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert set(BRIEF_ENV) <= set(variables), name
        for key, value in expected_refs.items():
            assert variables[key] == value, (name, key)
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "DmhubAdapter"


def test_ingest_answers_within_wechats_deadline_and_inside_its_claim_lease(resources: dict[str, Any]) -> None:
    ingest = resources["IngestFunction"]["Properties"]
    lease = int(ingest["Environment"]["Variables"]["CLAIM_LEASE_SECONDS"])
    assert ingest["Timeout"] < lease
    # CPU scales with memory; below 1 GB a cold start eats most of WeChat's 5 s.
    assert ingest["MemorySize"] >= 1024


def test_event_queue_visibility_covers_six_sender_timeouts(resources: dict[str, Any], sam: dict[str, Any]) -> None:
    sender_timeout = resources["SenderFunction"]["Properties"]["Timeout"]
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["MaximumBatchingWindowInSeconds"] == ref("SenderBatchingWindowSeconds")
    window = sam["Parameters"]["SenderBatchingWindowSeconds"]["MaxValue"]
    visibility = resources["EventQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * sender_timeout + window


def test_sender_is_fed_partial_batches_with_capped_concurrency(resources: dict[str, Any]) -> None:
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["EventSourceArn"] == getatt("EventQueue", "Arn")
    assert properties["FunctionName"] == ref("SenderFunction")
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["MaximumBatchingWindowInSeconds"] == ref("SenderBatchingWindowSeconds")
    assert properties["BatchSize"] == ref("SenderBatchSize")
    assert properties["ScalingConfig"] == {"MaximumConcurrency": ref("SenderMaxConcurrency")}


def test_dmhub_generation_endpoint_budget_and_batching_are_parameters(sam: dict[str, Any]) -> None:
    parameters = sam["Parameters"]
    assert parameters["DmHubApi"]["AllowedValues"] == ["v1", "v2"] and parameters["DmHubApi"]["Default"] == "v1"
    assert parameters["DmHubEventEndpoint"]["AllowedValues"] == ["customerevents", "collector"]
    assert parameters["DmHubCustomAttributes"]["AllowedValues"] == [5, 16]
    # a collector call carries up to 100 events; SQS needs a window of at least 1 s above 10
    assert parameters["SenderBatchSize"]["MaxValue"] == 100 and parameters["SenderBatchSize"]["Default"] == 50
    assert parameters["SenderBatchingWindowSeconds"]["MinValue"] >= 1
    variables = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["DMHUB_API"] == ref("DmHubApi")
    assert variables["DMHUB_EVENT_ENDPOINT"] == ref("DmHubEventEndpoint")
    assert variables["DMHUB_CUSTOM_ATTRIBUTES"] == ref("DmHubCustomAttributes")
    assert variables["DMHUB_TOKEN_MIN_AGE"] == ref("DmHubTokenMinAgeSeconds")


def test_the_dmhub_rate_cap_is_optional_and_shared_by_the_event_sources_instances(
    resources: dict[str, Any], sam: dict[str, Any]
) -> None:
    parameter = sam["Parameters"]["DmHubMaxRequestsPerSecond"]
    assert parameter["Default"] == ""  # no cap unless asked for
    for good in ("", "100", "2.5"):
        assert re.fullmatch(parameter["AllowedPattern"], good)
    for bad in ("-1", "abc", "1e3", "100 "):
        assert not re.fullmatch(parameter["AllowedPattern"], bad)
    variables = resources["SenderFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["DMHUB_MAX_REQUESTS_PER_SECOND"] == {
        "Fn::If": ["HasDmHubCap", ref("DmHubMaxRequestsPerSecond"), ref("AWS::NoValue")]
    }
    # the pacer divides the cap by the number of instances the event source may run at once
    (mapping,) = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    assert variables["SENDER_MAX_INSTANCES"] == mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    assert sam["Conditions"]["HasDmHubCap"] == {"Fn::Not": [{"Fn::Equals": [ref("DmHubMaxRequestsPerSecond"), ""]}]}


def test_every_brief_route_reaches_the_ingest_function(resources: dict[str, Any]) -> None:
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]

    def served(method: str, path: str) -> bool:
        for template, operations in paths.items():
            parts, wanted = template.strip("/").split("/"), path.strip("/").split("/")
            if len(parts) == len(wanted) and all(
                p == w or (p.startswith("{") and p.endswith("}")) for p, w in zip(parts, wanted, strict=True)
            ):
                operation = operations.get(method.lower())
                if operation:
                    uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                    return "${IngestFunction.Arn}" in uri
        return False

    for method, path in BRIEF_ROUTES:
        assert served(method, path), f"{method} {path} is not routed to IngestFunction"
    permissions = of_type(resources, "AWS::Lambda::Permission")
    arns = [p["Properties"]["SourceArn"]["Fn::Sub"][0] for p in permissions.values()]
    granted = {re.findall(r"/(\w+)/webhooks/", arn)[0] for arn in arns}
    assert granted == {"GET", "POST"}


def test_api_access_logs_go_to_a_log_group_with_retention(resources: dict[str, Any]) -> None:
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    group = settings["DestinationArn"]["Fn::GetAtt"][0]
    assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    assert resources[group]["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
    entry = json.loads(settings["Format"])
    assert {"requestId", "status", "routeKey"} <= set(entry)
    # WeChat sends the user's openid in the query string: never log it.
    assert not any("querystring" in str(v).lower() or "rawquery" in str(v).lower() for v in entry.values())


# ------------------------------------------------------------------------------- IAM


def test_every_function_has_its_own_least_privilege_role(resources: dict[str, Any]) -> None:
    seen_roles = set()
    for function in of_type(resources, "AWS::Lambda::Function"):
        role_name, role = role_of(resources, function)
        seen_roles.add(role_name)
        properties = role["Properties"]
        # Managed policies SAM would attach (basic execution, SQS poller) grant on "*".
        assert not properties.get("ManagedPolicyArns"), f"{role_name} attaches managed policies"
        assert list(statements(role)), f"{role_name} has no statements"
        for statement in statements(role):
            actions = as_list(statement["Action"])
            assert all("*" not in action for action in actions), (role_name, actions)
            if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"]):
                assert set(actions) <= STAR_ONLY_ACTIONS, (role_name, actions)
    assert len(seen_roles) == 2
    assert set(of_type(resources, "AWS::IAM::Role")) == seen_roles


def test_each_function_writes_only_its_own_log_group(resources: dict[str, Any]) -> None:
    for function in ("IngestFunction", "SenderFunction"):
        group = resources[function]["Properties"]["LoggingConfig"]["LogGroup"]
        group_name = group["Ref"]
        assert resources[group_name]["Properties"]["RetentionInDays"] == ref("LogRetentionDays")
        _, role = role_of(resources, function)
        assert allowed(role, "logs:PutLogEvents") == [getatt(group_name, "Arn")]
        assert allowed(role, "logs:CreateLogStream") == [getatt(group_name, "Arn")]


def test_ingest_permissions(resources: dict[str, Any]) -> None:
    _, role = role_of(resources, "IngestFunction")
    table = getatt("IdempotencyTable", "Arn")
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem"):
        assert allowed(role, action) == [table]
    assert sorted(map(json.dumps, allowed(role, "sqs:SendMessage"))) == sorted(
        map(json.dumps, [getatt("EventQueue", "Arn"), getatt("UnmappedQueue", "Arn")])
    )
    assert allowed(role, "sqs:ReceiveMessage") == []
    assert allowed(role, "s3:PutObject") == [{"Fn::Sub": "${UnmappedPayloadBucket.Arn}/unmapped/*"}]


# The values intrinsic functions see when the secret patterns are evaluated below.
PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
              "SecretsPrefix": "dmhub-adapter"}


def evaluate(node: Any, parameters: dict[str, Any]) -> Any:
    """The few intrinsic functions the ingest's secret patterns use, evaluated."""
    if isinstance(node, list):
        return [evaluate(item, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    ((function, argument),) = node.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Join":
        return argument[0].join(evaluate(argument[1], parameters))
    if function == "Fn::Split":
        return evaluate(argument[1], parameters).split(argument[0])
    if function == "Fn::Select":
        return evaluate(argument[1], parameters)[int(argument[0])]
    if function == "Fn::Sub":
        text, extra = (argument, {}) if isinstance(argument, str) else argument
        values = {**parameters, **{k: evaluate(v, parameters) for k, v in extra.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(values[m.group(1)]), text)
    raise AssertionError(f"unexpected {function}")


def secret_arn(name: str) -> str:
    return f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbC123"


def iam_match(pattern: str, arn: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def test_ingest_reads_only_the_secrets_of_the_sources_it_serves(resources: dict[str, Any], sam: dict[str, Any]) -> None:
    _, role = role_of(resources, "IngestFunction")
    default = sam["Parameters"]["IngestSources"]["Default"].split(",")
    patterns = [evaluate(r, {**PARAMETERS, "IngestSources": default})
                for r in allowed(role, "secretsmanager:GetSecretValue")]

    def readable(name: str) -> bool:
        return any(iam_match(p, secret_arn(name)) for p in patterns)

    for source in ("wechat", "taobao", "youzan", "doudian", "standard-webhooks", "wechatpay", "wecom", "shopify"):
        assert readable(f"dmhub-adapter/{source}/demo"), source
    # another stack's nested prefix, sources not served, the DM Hub credentials: out of reach
    for name in ("dmhub-adapter/staging/wechat/demo", "dmhub-adapter/acme/t1", "dmhub-adapter/dmhub",
                 "other/wechat/demo"):
        assert not readable(name), name
    served = [evaluate(r, {**PARAMETERS, "IngestSources": ["acme"]})
              for r in allowed(role, "secretsmanager:GetSecretValue")]
    assert any(iam_match(p, secret_arn("dmhub-adapter/acme/t1")) for p in served)
    assert not any(iam_match(p, secret_arn("dmhub-adapter/wechat/demo")) for p in served)


def test_the_dmhub_secret_deny_names_it_and_survives_re_creation(resources: dict[str, Any]) -> None:
    _, role = role_of(resources, "IngestFunction")
    (deny,) = denied(role, "secretsmanager:GetSecretValue")
    pattern = evaluate(deny["Resource"], PARAMETERS)
    # any random suffix Secrets Manager gives the secret, today or after it is re-created
    assert iam_match(pattern, secret_arn("dmhub-adapter/dmhub"))
    assert iam_match(pattern, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dmhub-adapter/dmhub-Zz9Yy8")
    assert not iam_match(pattern, secret_arn("dmhub-adapter/dmhub-sandbox"))


def test_each_route_family_has_its_own_throttle(resources: dict[str, Any], sam: dict[str, Any]) -> None:
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["RouteSettings"]
    expected = {
        "GET /webhooks/wechat/{account}": "Wechat", "POST /webhooks/wechat/{account}": "Wechat",
        "POST /webhooks/taobao/{account}": "Taobao",
        "GET /webhooks/{source}/{account}": "Generic", "POST /webhooks/{source}/{account}": "Generic",
    }
    assert set(settings) == set(expected)
    for route, family in expected.items():
        assert settings[route] == {"ThrottlingRateLimit": ref(f"{family}ThrottleRate"),
                                   "ThrottlingBurstLimit": ref(f"{family}ThrottleBurst")}
        assert sam["Parameters"][f"{family}ThrottleRate"]["Type"] == "Number"
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]
    assert {"/webhooks/wechat/{account}", "/webhooks/taobao/{account}", "/webhooks/{source}/{account}"} <= set(paths)


def test_a_route_without_source_parameter_still_names_its_source() -> None:
    from dmhub_adapter.apigw import request_from_event

    event = {"routeKey": "POST /webhooks/wechat/{account}", "pathParameters": {"account": "oa1"},
             "requestContext": {"routeKey": "POST /webhooks/wechat/{account}", "http": {"method": "POST"}}}
    request = request_from_event(event)
    assert (request.source, request.account) == ("wechat", "oa1")
    generic = {"pathParameters": {"source": "acme", "account": "t"},
               "requestContext": {"routeKey": "POST /webhooks/{source}/{account}", "http": {"method": "POST"}}}
    assert request_from_event(generic).source == "acme"


def test_ingest_concurrency_cap_is_optional(resources: dict[str, Any], sam: dict[str, Any]) -> None:
    assert sam["Parameters"]["IngestReservedConcurrency"]["Default"] == -1
    cap = resources["IngestFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert cap == {"Fn::If": ["HasIngestCap", ref("IngestReservedConcurrency"), ref("AWS::NoValue")]}
    assert sam["Conditions"]["HasIngestCap"] == {"Fn::Not": [{"Fn::Equals": [ref("IngestReservedConcurrency"), -1]}]}


def test_the_waf_is_optional_per_ip_and_in_front_of_the_api(resources: dict[str, Any], sam: dict[str, Any]) -> None:
    assert sam["Parameters"]["WafRateLimit"]["Default"] == 0
    acl, distribution = resources["WebhookWebAcl"], resources["WebhookDistribution"]
    assert acl["Condition"] == distribution["Condition"] == "HasWaf"
    assert acl["Properties"]["Scope"] == "CLOUDFRONT"
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {"Limit": ref("WafRateLimit"), "AggregateKeyType": "IP"}
    config = distribution["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == getatt("WebhookWebAcl", "Arn")
    assert "POST" in config["DefaultCacheBehavior"]["AllowedMethods"]
    # CloudFront-scoped WebACLs exist only in us-east-1: the stack refuses the WAF elsewhere
    assertion = sam["Rules"]["WafNeedsUsEast1"]["Assertions"][0]["Assert"]
    assert assertion == {"Fn::Equals": [ref("AWS::Region"), "us-east-1"]}


def test_oversize_unmapped_records_have_a_private_encrypted_expiring_bucket(resources: dict[str, Any]) -> None:
    bucket = resources["UnmappedPayloadBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 14 and rule["Status"] == "Enabled"
    for function in ("IngestFunction", "SenderFunction"):
        assert resources[function]["Properties"]["Environment"]["Variables"]["UNMAPPED_BUCKET"] == ref(
            "UnmappedPayloadBucket")
    _, sender = role_of(resources, "SenderFunction")
    assert allowed(sender, "s3:PutObject") == []


def test_ingest_cannot_read_the_dmhub_token_or_identity_cache(resources: dict[str, Any]) -> None:
    from dmhub_adapter.dmhub.identity import identity_key
    from dmhub_adapter.model import Identity
    from dmhub_adapter.store.tokens import token_key

    _, role = role_of(resources, "IngestFunction")
    (deny,) = denied(role, "dynamodb:GetItem")
    patterns = deny["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]
    keys = [token_key("app"), identity_key(Identity(type="wechat", value="o123"))]
    for key in keys:
        assert any(re.fullmatch(p.replace("*", ".*"), key) for p in patterns), key
    assert not any(re.fullmatch(p.replace("*", ".*"), "wechat#demo#gh_1#123") for p in patterns)


def test_sender_permissions(resources: dict[str, Any]) -> None:
    _, role = role_of(resources, "SenderFunction")
    event_queue = getatt("EventQueue", "Arn")
    # What the event source mapping itself needs: without them the deploy fails.
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert allowed(role, action) == [event_queue], action
    assert allowed(role, "sqs:SendMessage") == [getatt("DeadLetterQueue", "Arn")]
    assert allowed(role, "secretsmanager:GetSecretValue") == [ref("DmHubSecret")]
    assert allowed(role, "dynamodb:UpdateItem") == [getatt("IdempotencyTable", "Arn")]


# ------------------------------------------------------------------------------- state


def test_table_matches_the_claim_store(resources: dict[str, Any]) -> None:
    properties = resources["IdempotencyTable"]["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [{"AttributeName": KEY, "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": KEY, "AttributeType": "S"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_queues_redrive_and_retention(resources: dict[str, Any]) -> None:
    redrive = resources["EventQueue"]["Properties"]["RedrivePolicy"]
    assert redrive == {
        "deadLetterTargetArn": getatt("DeadLetterQueue", "Arn"),
        "maxReceiveCount": ref("MaxReceiveCount"),
    }
    assert resources["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert resources["UnmappedQueue"]["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS
    # A redriven message keeps its first enqueue time, so the DLQ must keep messages longer.
    assert resources["EventQueue"]["Properties"]["MessageRetentionPeriod"] < FOURTEEN_DAYS


def test_an_unmapped_record_of_a_body_at_the_cap_fits_its_queue(resources: dict[str, Any]) -> None:
    from dmhub_adapter.settings import Settings

    cap = Settings().max_body_bytes
    record_bound = cap * 4 // 3 + 16 * 1024  # base64 of a binary body, plus reasons and headers
    assert resources["UnmappedQueue"]["Properties"]["MaximumMessageSize"] >= record_bound


def test_dmhub_secret_is_named_by_the_prefix_and_holds_no_literal_value(resources: dict[str, Any]) -> None:
    secrets = of_type(resources, "AWS::SecretsManager::Secret")
    assert list(secrets) == ["DmHubSecret"]
    properties = secrets["DmHubSecret"]["Properties"]
    assert properties["Name"] == {"Fn::Sub": "${SecretsPrefix}/dmhub"}
    assert "SecretString" not in properties
    assert properties["GenerateSecretString"]["GenerateStringKey"] == "secret"


def test_parameters_and_their_defaults(sam: dict[str, Any]) -> None:
    parameters = sam["Parameters"]
    for name in (
        "DmHubBaseUrl", "SecretsPrefix", "SenderMaxConcurrency", "DedupTtlDays", "MaxReceiveCount", "LogLevel",
        "AlarmEmail",
    ):
        assert name in parameters
    assert parameters["DmHubBaseUrl"]["Default"] == DEFAULT_DMHUB_BASE_URL
    assert parameters["SecretsPrefix"]["Default"] == DEFAULT_SECRETS_PREFIX
    assert re.fullmatch(parameters["SecretsPrefix"]["AllowedPattern"], DEFAULT_SECRETS_PREFIX)
    assert not re.fullmatch(parameters["SecretsPrefix"]["AllowedPattern"], "/leading-slash")
    assert parameters["SenderMaxConcurrency"]["MinValue"] >= 2  # the SQS ScalingConfig minimum
    assert parameters["MaxReceiveCount"]["MaxValue"] <= 1000  # the SQS redrive maximum


def test_outputs_name_the_endpoints_and_resources(sam: dict[str, Any]) -> None:
    outputs = sam["Outputs"]
    assert outputs["WebhookBaseUrl"]["Value"]["Fn::Sub"].endswith("/webhooks")
    assert outputs["EventQueueUrl"]["Value"] == ref("EventQueue")
    assert outputs["DeadLetterQueueUrl"]["Value"] == ref("DeadLetterQueue")
    assert outputs["UnmappedQueueUrl"]["Value"] == ref("UnmappedQueue")
    assert outputs["IdempotencyTableName"]["Value"] == ref("IdempotencyTable")


# ------------------------------------------------------------------------------- alarms


def test_every_queue_has_an_alarm(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    watched = set()
    for alarm in alarms.values():
        for dimension in alarm["Properties"].get("Dimensions", []):
            if dimension["Name"] == "QueueName":
                watched.add(dimension["Value"]["Fn::GetAtt"][0])
    assert watched == set(of_type(resources, "AWS::SQS::Queue"))


def test_every_alarm_notifies_the_topic(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 8
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [ref("AlarmTopic")], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == ref("AlarmEmail")


def test_alarms_cover_the_failure_signals(resources: dict[str, Any]) -> None:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()

    def watches(namespace: str, metric: str) -> bool:
        for alarm in alarms:
            properties = alarm["Properties"]
            if (properties.get("Namespace"), properties.get("MetricName")) == (namespace, metric):
                return True
            for query in properties.get("Metrics", []):
                stat = query.get("MetricStat", {}).get("Metric", {})
                if (stat.get("Namespace"), stat.get("MetricName")) == (namespace, metric):
                    return True
                expression = query.get("Expression")
                text = expression["Fn::Sub"] if isinstance(expression, dict) else expression or ""
                if f"({metric}) FROM {namespace}" in text:
                    return True
        return False

    for namespace, metric in (
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "4xx"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("DmhubAdapter", "Rejected"),
    ):
        assert watches(namespace, metric), (namespace, metric)


def test_the_rejected_signature_alarm_uses_the_reason_the_ingest_emits(resources: dict[str, Any]) -> None:
    (query,) = resources["RejectedSignaturesAlarm"]["Properties"]["Metrics"]
    reasons = re.findall(r"reason = '([^']+)'", query["Expression"]["Fn::Sub"])
    assert reasons
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "layers").rglob("sources/**/*.py"))
    for reason in reasons:
        assert f'code="{reason}"' in sources, reason


def _dashboard(resources: dict[str, Any]) -> dict[str, Any]:
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}!]+)\}", body))
    for name in names:
        head = name.split(".")[0]
        assert head in resources or name.startswith("AWS::"), f"dashboard references unknown {name}"
    parsed: dict[str, Any] = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    return parsed


def test_dashboard_is_valid_json_and_shows_the_emitted_metrics(resources: dict[str, Any]) -> None:
    dashboard = _dashboard(resources)
    text = json.dumps(dashboard)
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for base in (ROOT / "layers" / "shared" / "dmhub_adapter", ROOT / "functions")
        for p in base.rglob("*.py")
    )
    custom = set()
    for widget in dashboard["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if line and line[0] == "DmhubAdapter":
                custom.add(line[1])
            elif isinstance(line[0], dict):
                custom.update(re.findall(r'MetricName=\\?"(\w+)', line[0]["expression"]))
    assert {"Received", "Enqueued", "Rejected", "Delivered", "Failed"} <= custom
    for metric in custom:
        assert f'"{metric}"' in code, f"the dashboard shows {metric}, which no code emits"
    alarm_widget = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget[0]["properties"]["alarms"]) == len(of_type(resources, "AWS::CloudWatch::Alarm"))
    assert "AWS/SQS" in text and "AWS/ApiGateway" in text and "AWS/Lambda" in text


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_operations_doc_explains_every_alarm(resources: dict[str, Any]) -> None:
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    anchors = {_slug(line.lstrip("#")) for line in doc.splitlines() if line.startswith("#")}
    for name, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items():
        suffix = alarm["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        assert f"`{suffix}`" in doc, f"{name} ({suffix}) is not in docs/operations.md"
        (anchor,) = re.findall(r"operations\.md#([\w-]+)", alarm["Properties"]["AlarmDescription"])
        assert anchor in anchors, f"{name} points to #{anchor}, which docs/operations.md lacks"


# ------------------------------------------------------------------------------- build


def test_makefile_builds_match_the_logical_ids(sam: dict[str, Any]) -> None:
    built = 0
    for name, resource in sam["Resources"].items():
        if (resource.get("Metadata") or {}).get("BuildMethod") != "makefile":
            continue
        properties = resource["Properties"]
        code_dir = ROOT / (properties.get("CodeUri") or properties["ContentUri"])
        makefile = (code_dir / "Makefile").read_text(encoding="utf-8")
        assert re.search(rf"^build-{name}:", makefile, re.MULTILINE), f"{code_dir}/Makefile lacks build-{name}"
        assert "compileall" in makefile and "unchecked-hash" in makefile
        built += 1
    assert built == 3


def _requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_layer_requirements_cover_the_runtime_dependencies_minus_the_sdk() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _requirement_names(project["dependencies"])
    layer = _requirement_names((ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines())
    assert not layer & RUNTIME_PROVIDED
    assert runtime - RUNTIME_PROVIDED <= layer, "a runtime dependency is missing from the layer"
