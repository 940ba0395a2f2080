"""A Lambda context object with the attributes and methods handlers (and Powertools) read."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

DEFAULT_REGION = "eu-west-1"
DEFAULT_ACCOUNT = "000000000000"


@dataclass
class LambdaContext:
    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Lambda's context also carries these; None as for a call without Cognito or a mobile SDK.
    identity: object | None = None
    client_context: object | None = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def new_context(
    function_name: str, *, timeout_seconds: float, memory_limit_in_mb: int = 512, region: str = DEFAULT_REGION
) -> LambdaContext:
    """A fresh context per invocation (new request id, deadline counted from now)."""
    return LambdaContext(
        function_name=function_name,
        timeout_seconds=timeout_seconds,
        memory_limit_in_mb=memory_limit_in_mb,
        region=region,
    )
