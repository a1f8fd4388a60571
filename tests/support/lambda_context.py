"""A LambdaContext stand-in for calling handlers directly."""

from __future__ import annotations

import uuid


class FakeContext:
    function_name = "neruba-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:neruba-test"
    log_group_name = "/aws/lambda/neruba-test"
    log_stream_name = "test"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
