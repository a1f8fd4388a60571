"""CloudFormation custom resource ``Custom::Migrations``: run the data migrations on every deploy."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from neruba import bootstrap
from neruba.migrations import migrate
from neruba.migrations.custom_resource import handle, send_response
from neruba.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(request_type=event.get("RequestType"), cfn_request_id=event.get("RequestId"))
    ops = bootstrap.ops()
    body = handle(
        event,
        context.log_stream_name,
        run=lambda: migrate(log=logger.info),
        version_done=ops.deploy_version_migrated,
        mark_version=ops.record_deploy_version,
    )
    if body["Status"] == "FAILED":
        logger.error("migrations failed", extra={"reason": body["Reason"]})
    else:
        logger.info("migrations done", extra={"reason": body["Reason"]})
    if event.get("ResponseURL"):
        send_response(event["ResponseURL"], body)
    return body
