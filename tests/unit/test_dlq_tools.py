"""DLQ redrive on AWS: the StartMessageMoveTask / ListMessageMoveTasks calls' shape (botocore Stubber),
how an endpoint without them is recognised, and the CLI resolving queues through CloudFormation."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from neruba.dal import queues

DLQ_ARN = "arn:aws:sqs:eu-west-1:111122223333:neruba-prod-IngestDLQ-AbC"
SOURCE_ARN = "arn:aws:sqs:eu-west-1:111122223333:neruba-prod-IngestQueue-XyZ"
DLQ_URL = "https://sqs.eu-west-1.amazonaws.com/111122223333/neruba-prod-IngestDLQ-AbC"
SOURCE_URL = "https://sqs.eu-west-1.amazonaws.com/111122223333/neruba-prod-IngestQueue-XyZ"


def _client(service: str) -> Any:
    return boto3.session.Session().client(
        service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_start_move_task_sends_the_dlq_as_source_and_the_source_queue_as_destination() -> None:
    sqs = _client("sqs")
    with Stubber(sqs) as stub:
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "handle-1"},
            {"SourceArn": DLQ_ARN, "DestinationArn": SOURCE_ARN, "MaxNumberOfMessagesPerSecond": 50},
        )
        assert queues.start_move_task(sqs, DLQ_ARN, SOURCE_ARN, rate=50) == "handle-1"
        stub.assert_no_pending_responses()


def test_move_tasks_lists_the_dlq_tasks() -> None:
    sqs = _client("sqs")
    task = {
        "TaskHandle": "handle-1",
        "Status": "RUNNING",
        "SourceArn": DLQ_ARN,
        "DestinationArn": SOURCE_ARN,
        "ApproximateNumberOfMessagesMoved": 40,
        "ApproximateNumberOfMessagesToMove": 100,
        "StartedTimestamp": 1_764_028_800_000,
    }
    with Stubber(sqs) as stub:
        stub.add_response(
            "list_message_move_tasks", {"Results": [task]}, {"SourceArn": DLQ_ARN, "MaxResults": 10}
        )
        assert queues.move_tasks(sqs, DLQ_ARN) == [task]


@pytest.mark.parametrize(("code", "status"), [("InternalFailure", 500), ("UnsupportedOperation", 400)])
def test_an_endpoint_without_move_tasks_is_recognised(code: str, status: int) -> None:
    sqs = _client("sqs")
    with Stubber(sqs) as stub:
        stub.add_client_error("start_message_move_task", service_error_code=code, http_status_code=status)
        with pytest.raises(queues.MoveTaskUnavailableError):
            queues.start_move_task(sqs, DLQ_ARN, SOURCE_ARN)


def test_other_errors_are_not_mistaken_for_an_unavailable_api() -> None:
    sqs = _client("sqs")
    with Stubber(sqs) as stub:
        stub.add_client_error(
            "start_message_move_task", service_error_code="AccessDenied", http_status_code=403
        )
        with pytest.raises(Exception, match="AccessDenied"):
            queues.start_move_task(sqs, DLQ_ARN, SOURCE_ARN)


def test_in_process_moto_raises_not_implemented_which_counts_as_unavailable() -> None:
    class Moto:
        def start_message_move_task(self, **kwargs: Any) -> Any:
            raise NotImplementedError("The start_message_move_task action has not been implemented")

    with pytest.raises(queues.MoveTaskUnavailableError):
        queues.start_move_task(Moto(), DLQ_ARN, SOURCE_ARN)


def test_cli_redrive_on_aws_finds_the_queues_in_the_stack_and_starts_a_move_task(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployed stack (CloudFormation knows the physical queue URLs) and no local endpoint
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    cloudformation, sqs, sqs_no_retry = _client("cloudformation"), _client("sqs"), _client("sqs")
    summaries = [
        {
            "LogicalResourceId": logical,
            "PhysicalResourceId": url,
            "ResourceType": "AWS::SQS::Queue",
            "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        }
        for logical, url in (("IngestDLQ", DLQ_URL), ("IngestQueue", SOURCE_URL))
    ]
    made = iter([cloudformation, sqs, sqs_no_retry])
    from neruba_tools import dlq, stackinfo

    monkeypatch.setattr(stackinfo, "boto_client", lambda service, **config: next(made))
    monkeypatch.setattr(dlq, "boto_client", lambda service, **config: next(made))
    with Stubber(cloudformation) as cfn, Stubber(sqs) as stub, Stubber(sqs_no_retry) as move:
        cfn.add_response(
            "list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": "neruba-prod"}
        )
        for url, arn in ((DLQ_URL, DLQ_ARN), (SOURCE_URL, SOURCE_ARN)):
            stub.add_response(
                "get_queue_attributes",
                {"Attributes": {"QueueArn": arn}},
                {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
            )
        move.add_response(
            "start_message_move_task",
            {"TaskHandle": "h-9"},
            {"SourceArn": DLQ_ARN, "DestinationArn": SOURCE_ARN},
        )
        # WHEN the operator redrives the ingest DLQ
        from neruba_tools.cli import main

        code = main(["dlq", "redrive", "IngestDLQ", "--stack", "neruba-prod"])
        # THEN one move task is started from the DLQ back to its source queue
        assert code == 0
        move.assert_no_pending_responses()
    assert "h-9" in capsys.readouterr().out


def test_cli_refuses_max_without_the_mover_on_aws(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from neruba_tools import stackinfo
    from neruba_tools.cli import main

    monkeypatch.setattr(stackinfo.StackInfo, "physical", {"IngestDLQ": DLQ_URL, "IngestQueue": SOURCE_URL})
    monkeypatch.setattr("neruba_tools.dlq.boto_client", lambda service, **config: None)
    assert main(["dlq", "redrive", "IngestDLQ", "--stack", "neruba-prod", "--max", "5"]) == 2
    assert "--mover" in capsys.readouterr().err


def test_every_dead_letter_queue_of_the_template_is_known() -> None:
    from neruba_tools.stackinfo import StackInfo

    found = StackInfo("neruba-prod").dead_letter_queues()
    # the queue-fed DLQs point back at their source queue
    assert found["IngestDLQ"].source_queue == "IngestQueue"
    assert found["StripeSyncDLQ"].source_queue == "StripeSyncQueue"
    # the scheduled functions' on-failure destination is a DLQ too, fed by functions, not by a queue
    scheduled = found["ScheduledFailuresDLQ"]
    assert scheduled.source_queue is None
    assert "SweeperFunction" in scheduled.feeders and "BillingSchedulerFunction" in scheduled.feeders


def test_a_dlq_is_found_wherever_the_template_names_one(tmp_path: Any) -> None:
    from neruba_tools.stackinfo import StackInfo

    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Work: {Type: AWS::SQS::Queue, Properties: {RedrivePolicy: "
        "{deadLetterTargetArn: !GetAtt WorkDLQ.Arn, maxReceiveCount: 3}}}\n"
        "  WorkDLQ: {Type: AWS::SQS::Queue}\n"
        "  AsyncDLQ: {Type: AWS::SQS::Queue}\n"
        "  Plain: {Type: AWS::SQS::Queue}\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt AsyncDLQ.Arn}}\n"
    )
    found = StackInfo("s", template).dead_letter_queues()
    assert sorted(found) == ["AsyncDLQ", "WorkDLQ"]
    assert found["WorkDLQ"].source_queue == "Work" and found["AsyncDLQ"].feeders == ("Fn",)


def test_a_dlq_without_a_source_queue_is_not_redriven_and_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from neruba_tools import stackinfo
    from neruba_tools.cli import main

    physical = {
        "ScheduledFailuresDLQ": "https://sqs.eu-west-1.amazonaws.com/1/neruba-prod-ScheduledFailuresDLQ-A"
    }
    monkeypatch.setattr(stackinfo.StackInfo, "physical", physical)
    monkeypatch.setattr("neruba_tools.dlq.boto_client", lambda service, **config: None)
    assert main(["dlq", "redrive", "ScheduledFailuresDLQ", "--stack", "neruba-prod"]) == 2
    err = capsys.readouterr().err
    assert "no source queue" in err and "dlq-redrive.md" in err
