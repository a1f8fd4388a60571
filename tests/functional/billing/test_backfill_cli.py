"""``neruba backfill ...`` end to end: the command, the Python client, and the billing API handler behind
an HTTP transport that hands each request to it as API Gateway would."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.functional.billing.backfill_support import PRICE, billed_days, handler
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, work
from tests.support.api import api_event, call


def _forward(request: httpx.Request) -> httpx.Response:
    from functions.billing_api.app import lambda_handler

    path = request.url.path
    found = re.match(r"^/admin/backfills/(bf_[0-9a-f]+)", path)
    headers = {k: v for k, v in request.headers.items() if k.lower() == "idempotency-key"}
    event = api_event(
        request.method,
        path,
        raw_body=request.content.decode() or None,
        query=dict(request.url.params) or None,
        path_parameters={"backfill_id": found.group(1)} if found else None,
        headers={"Content-Type": "application/json", **headers},
    )
    status, answer, _ = call(lambda_handler, event)
    return httpx.Response(status, json=answer)


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    from neruba_client import Neruba
    from neruba_tools import backfill
    from neruba_tools.cli import main

    client = Neruba("nrb_test", base_url="http://api.test", http_transport=httpx.MockTransport(_forward))
    monkeypatch.setattr(backfill, "client_for", lambda args: client)

    def run(*argv: str) -> tuple[int, Any, str]:
        code = main(["backfill", *argv])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err

    return run


def test_open_send_preview_commit_from_the_command_line(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    billed_days(world, monkeypatch, [3, 4])
    scope = ["--customer", "acme", "--meter", "api_calls", "--start", START.isoformat()]
    code, opened, _ = cli(
        "open", *scope, "--end", (START + day(4)).isoformat(), "--reason", "lost", "--key", "o1"
    )
    assert code == 0 and opened["status"] == "open"
    lines = [
        {
            "transaction_id": f"t{i}",
            "customer_id": "acme",
            "code": "api_calls",
            "timestamp": (START + day(0, 5)).isoformat(),
        }
        for i in range(150)
    ]
    lines.append(
        {
            "transaction_id": "late",
            "customer_id": "acme",
            "code": "api_calls",
            "timestamp": START.isoformat().replace("2026", "2027"),
        }
    )
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    code, sent, err = cli("events", opened["id"], str(events))
    assert code == 1  # one event refused, named on stderr
    assert (sent["sent"], sent["held"], sent["rejected"]) == (151, 150, 1)
    assert f"{events}:151: timestamp" in err
    code, again, _ = cli("events", opened["id"], str(events))
    assert again["duplicate"] == 150  # sending the file again holds nothing twice

    code, preview, _ = cli("preview", opened["id"])
    assert code == 0 and [i["difference_minor"] for i in preview["invoices"]] == [150 * PRICE]
    code, done, _ = cli("commit", opened["id"], "--reason", "checked", "--ticket", "OPS-1")
    assert code == 3 and done["status"] == "committing"  # 150 events: more than a request runs
    work(world, START + day(2, 6), monkeypatch)
    code, shown, _ = cli("show", opened["id"])
    assert shown["status"] == "committed" and shown["committed"]["events_counted"] == 150
    code, listed, _ = cli("list", "--status", "committed")
    assert [b["id"] for b in listed["data"]] == [opened["id"]]
    code, _, err = cli("cancel", opened["id"], "--reason", "too late")
    assert code == 1 and "409 backfill_not_open" in err


def test_revert_from_the_command_line(world: World, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    billed_days(world, monkeypatch, [3, 4])
    scope = ["--customer", "acme", "--meter", "api_calls", "--start", START.isoformat()]
    _, opened, _ = cli("open", *scope, "--end", (START + day(4)).isoformat(), "--reason", "lost")
    event = {"customer_id": "acme", "code": "api_calls", "timestamp": (START + day(0, 5)).isoformat()}
    call(
        handler(),
        api_event(
            "POST",
            f"/admin/backfills/{opened['id']}/events",
            body={"events": [{**event, "transaction_id": f"t{i}"} for i in range(3)]},
            path_parameters={"backfill_id": opened["id"]},
        ),
    )
    assert cli("commit", opened["id"], "--reason", "checked")[1]["committed"]["events_counted"] == 3
    # the world's events are months old, past the void horizon (35 days): the revert's own reruns
    # correct their invoices
    code, done, _ = cli("revert", opened["id"], "--reason", "imported twice", "--ticket", "FIN-2")
    assert code == 0 and done["status"] == "reverted" and done["reverted"]["events_voided"] == 3
    assert [i["amount_minor"] for i in done["reverted"]["invoices"]] == [-3 * PRICE]
    code, again, _ = cli("commit", opened["id"], "--reason", "again")  # a reverted backfill stays so
    assert code == 0 and again["status"] == "reverted"
    # a replace backfill of that old range opened from the command line
    code, replacing, _ = cli(
        "open", *scope, "--end", (START + day(1)).isoformat(), "--mode", "replace", "--reason", "re-export"
    )
    assert code == 0 and replacing["mode"] == "replace"
    from tests.functional.billing.backfill_support import live_events

    assert live_events(world, ["l0", "l1"], START + day(0, 3), "live-l") == {"accepted": 2}
    code, replaced, _ = cli("commit", replacing["id"], "--reason", "checked")
    assert code == 0 and replaced["committed"]["events_replaced"] == 2
    code, undone, _ = cli("revert", replacing["id"], "--reason", "wrong export")
    assert code == 0 and undone["reverted"]["events_restored"] == 2


def test_a_malformed_line_is_named_by_its_file_line_and_nothing_is_sent(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    billed_days(world, monkeypatch, [3, 4])
    scope = ["--customer", "acme", "--meter", "api_calls", "--start", START.isoformat()]
    _, opened, _ = cli("open", *scope, "--end", (START + day(4)).isoformat(), "--reason", "lost")
    good = {"customer_id": "acme", "code": "api_calls", "timestamp": (START + day(0, 5)).isoformat()}
    lines = [json.dumps({**good, "transaction_id": "a"}), "", "{not json", json.dumps([1]),
             json.dumps({**good, "transaction_id": "b", "timestamp": "2099-01-01T00:00:00Z"})]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")

    code, sent, err = cli("events", opened["id"], str(events))

    # THEN every malformed line is named by its line in the file, and nothing is held
    assert code == 2 and sent is None
    assert f"{events}:3: not JSON" in err and f"{events}:4: not a JSON object" in err
    shown = cli("show", opened["id"])[1]
    assert shown["events_held"] == 0
    # once fixed, a rejected event is named by its file line too (blank lines counted)
    lines[2:4] = [json.dumps({**good, "transaction_id": "c"}), json.dumps({**good, "transaction_id": "d"})]
    events.write_text("\n".join(lines) + "\n")
    code, sent, err = cli("events", opened["id"], str(events))
    assert code == 1 and (sent["held"], sent["rejected"]) == (3, 1)
    assert f"{events}:5: timestamp" in err
