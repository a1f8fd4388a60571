"""The ``neruba`` operator command.

    neruba config check                      every missing or invalid setting, exit 1 if any
    neruba keys create --scope ingest [--scope read] [--name NAME] [--stack NAME]
    neruba keys list | revoke KEY | rotate KEY [--overlap 24h]   KEY: the id, the listed prefix or the key
    neruba local run [--port 8080]           the whole stack on localhost (what `make run` does)
    neruba openapi > docs/openapi.json       the API reference, generated from the routes
    neruba allowed-methods > functions/method_not_allowed/allowed.json   methods per path, from the template
    neruba sweep [--check NAME] [--from ISO --to ISO] [--stack NAME]   the consistency sweep, now
    neruba dlq list | show QUEUE | redrive QUEUE [--max N] | status QUEUE   dead-letter queues
    neruba smoke --base-url URL --api-key KEY                  the post-deploy smoke test
    neruba events void|amend TX --customer ID --reason R --ticket T [--base-url URL] [--api-key KEY]
    neruba migrate [--list] [--stack NAME]                     data migrations (OpsTable MIG#)
    neruba backfill open | events | preview | commit | cancel | revert | list | show   backfills (API)

Commands that touch AWS find the stack's tables and queues from ``--stack NAME`` (its CloudFormation
resources: nothing but AWS credentials needed), or from a local stack when ``--endpoint-url`` is on this
machine (its region and test credentials are then the defaults), or else from ``NERUBA_*`` settings.
``--endpoint-url URL`` and ``--debug`` (full tracebacks) may come anywhere on the line; errors are one line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba_tools.argtypes import endpoint, label


def _config_check(args: argparse.Namespace) -> int:
    from neruba.settings import check_environment
    from neruba_tools.stackinfo import use_stack_settings

    # the stack's (or the local stack's) tables and queues, when given; what is missing is listed below
    use_stack_settings(args.stack, require=False)
    problems = check_environment(os.environ)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} setting(s) missing or invalid.", file=sys.stderr)
        return 1
    print("Configuration OK.")
    return 0


class UsageError(Exception):
    """Something the operator typed cannot work; printed as one line, exit code 2."""


def _keys_repo(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The keys table of ``--stack`` (or of the local stack), else of ``NERUBA_KEYS_TABLE``: the keys
    commands need that one table only."""
    from neruba.dal.keys import KeysRepository
    from neruba_tools.stackinfo import endpoint_url, is_local_endpoint, stack_for

    if args.stack or is_local_endpoint(endpoint_url()):
        return KeysRepository(stack_for(args.stack).resource("KeysTable"))
    table = os.environ.get("NERUBA_KEYS_TABLE")
    if not table:
        raise UsageError(
            "give --stack NAME (the deployed stack), --endpoint-url of a local stack, or NERUBA_KEYS_TABLE"
        )
    return KeysRepository(table)


def _key_id(args: argparse.Namespace) -> str:
    """The id of the key the operator named: its id, its listed prefix, or the whole key, which must then be
    that key (a whole key with a mistyped secret part names no key rather than the key with its id)."""
    from neruba.dal.keys import KeyNotFoundError
    from neruba.security.apikeys import MalformedKeyError, key_id_of, parse_key_id, verify

    text = args.key_id
    try:
        key_id = key_id_of(text)
    except MalformedKeyError as exc:
        raise UsageError(str(exc)) from None
    try:
        parse_key_id(text.strip())
    except MalformedKeyError:
        return key_id  # an id or a listed prefix
    try:
        _, digest = _keys_repo(args).get(key_id)
    except KeyNotFoundError:
        return key_id  # the command says there is no such key
    if not verify(text.strip(), digest):
        raise UsageError(
            f"the key given is not the stored key {key_id} (its secret part differs); "
            "name it by its id or the prefix `keys list` shows"
        )
    return key_id


def _keys_create(args: argparse.Namespace) -> int:
    from neruba.security.apikeys import UnknownScopeError, strict_scopes

    try:
        scopes = strict_scopes(args.scope)
    except UnknownScopeError as exc:
        raise UsageError(str(exc)) from None
    if not scopes:
        raise UsageError("give at least one --scope of ingest, read, admin")
    plaintext, key = _keys_repo(args).create(scopes, name=args.name)
    print(f"Key id: {key.key_id}")
    print(f"Scopes: {' '.join(sorted(key.scopes))}")
    print(f"API key: {plaintext}")
    print("Store it now: only its hash is kept.", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    keys = _keys_repo(args).list()
    print(f"{'KEY':<22} {'NAME':<20} {'SCOPES':<20} {'CREATED':<26} STATUS")
    for key in keys:
        if key.revoked_at is None:
            status = "active"
        else:
            status = f"active until {key.revoked_at}" if key.active else f"revoked {key.revoked_at}"
        scopes = " ".join(sorted(key.scopes))
        print(f"{key.prefix:<22} {key.name[:20]:<20} {scopes:<20} {key.created_at:<26} {status}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from neruba.dal.keys import KeyNotFoundError

    key_id = _key_id(args)
    try:
        key = _keys_repo(args).revoke(key_id)
    except KeyNotFoundError:
        print(f"No key {key_id}.", file=sys.stderr)
        return 1
    print(f"Revoked {key.prefix} at {key.revoked_at}; {_cache_note()}")
    return 0


def _cache_note() -> str:
    ttl = os.environ.get("NERUBA_AUTHORIZER_CACHE_TTL_SECONDS")
    within = f"{ttl} s" if ttl else "the stack's AuthorizerCacheTtl (60 s unless set)"
    return f"API Gateway may still accept it for a cached answer, at most {within}."


MAX_DURATION = timedelta(days=365)


def _duration(text: str) -> timedelta:
    """``0``, ``90s``, ``30m``, ``24h`` or ``7d``; at most 365 days."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text, "s") if text.isdigit() else (text[:-1], text[-1:])
    if not number.isdigit() or unit not in units:
        raise argparse.ArgumentTypeError(f"expected a duration such as 0, 30m, 24h or 7d, got {text!r}")
    seconds = int(number) * units[unit]
    if seconds > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(f"at most {MAX_DURATION.days}d, got {text!r}")
    return timedelta(seconds=seconds)


def _keys_rotate(args: argparse.Namespace) -> int:
    from neruba.dal.keys import KeyNotFoundError

    key_id = _key_id(args)
    until = datetime.now(UTC) + args.overlap
    try:
        plaintext, key = _keys_repo(args).rotate(key_id, old_works_until=until)
    except (KeyNotFoundError, ValueError) as exc:
        print(f"Cannot rotate {key_id}: {exc}", file=sys.stderr)
        return 1
    print(f"Key id: {key.key_id}")
    print(f"Scopes: {' '.join(sorted(key.scopes))}")
    print(f"API key: {plaintext}")
    if args.overlap:
        print(
            f"The old key {key_id} keeps working until {until.isoformat(timespec='seconds')}.",
            file=sys.stderr,
        )
    else:
        print(f"The old key {key_id} is revoked; {_cache_note()}", file=sys.stderr)
    return 0


def openapi_text() -> str:
    """The OpenAPI document of every route, as committed in docs/openapi.json."""
    import json

    from neruba.api.resolver import build_resolver, openapi_document
    from neruba.api.routes import all_routers

    return (
        json.dumps(
            json.loads(openapi_document(build_resolver(documented=all_routers()))), indent=2, sort_keys=True
        )
        + "\n"
    )


def _openapi(_: argparse.Namespace) -> int:
    sys.stdout.write(openapi_text())
    return 0


def _local_run(args: argparse.Namespace) -> int:
    from neruba_tools.local.run import main as run_main

    return run_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neruba", description="Operate Neruba.")
    parser.add_argument(
        "--endpoint-url", type=endpoint,
        help="AWS endpoint, e.g. a local stack's moto URL (anywhere on the line)",
    )  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="print full tracebacks (anywhere on the line)")
    commands = parser.add_subparsers(dest="command", required=True)

    config = commands.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="list missing or invalid settings")
    check.add_argument("--stack", help="check the settings a stack's functions get (its tables and queues)")
    check.set_defaults(func=_config_check)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key (shown once)")
    create.add_argument("--scope", action="append", required=True, help="ingest, read or admin (repeatable)")
    create.add_argument("--name", type=label, default="", help="what the key is for (one line, at most 100)")
    create.set_defaults(func=_keys_create)
    listing = keys.add_parser("list", help="list keys (prefix only)")
    listing.set_defaults(func=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key now")
    revoke.add_argument("key_id", metavar="KEY", help="key id, the prefix `keys list` shows, or the key")
    revoke.set_defaults(func=_keys_revoke)
    rotate = keys.add_parser(
        "rotate", help="a new key with the same scopes; the old one works a while longer"
    )
    rotate.add_argument("key_id", metavar="KEY", help="key id, the prefix `keys list` shows, or the key")
    rotate.add_argument(
        "--overlap", type=_duration, default=timedelta(hours=24),
        help="how long the old key keeps working (0, 30m, 24h, 7d; default 24h)",
    )  # fmt: skip
    rotate.set_defaults(func=_keys_rotate)
    for sub in (create, listing, revoke, rotate):
        sub.add_argument("--stack", help="the CloudFormation stack whose keys table to use")

    commands.add_parser("openapi", help="print the OpenAPI document").set_defaults(func=_openapi)

    from neruba_tools import backfill, corrections, dlq, events, methods, migrate, smoke, sweep, webhooks

    for module in (sweep, dlq, smoke, migrate, webhooks, methods, backfill, events, corrections):
        module.add_parser(commands)

    local = commands.add_parser("local", help="the local stack").add_subparsers(dest="action", required=True)
    run = local.add_parser("run", help="start the whole stack on localhost", add_help=False)
    run.add_argument("rest", nargs=argparse.REMAINDER)
    run.set_defaults(func=_local_run)
    return parser


GLOBAL_VALUE_OPTIONS = ("--endpoint-url",)
GLOBAL_FLAGS = ("--debug",)


def _hoist_global_options(argv: list[str]) -> list[str]:
    """Move ``--endpoint-url URL`` and ``--debug`` to the front, wherever they were typed."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        name = word.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS:
            take = 1 if "=" in word else 2
            front += argv[i : i + take]
            i += take
            continue
        if word in GLOBAL_FLAGS:
            front.append(word)
        else:
            rest.append(word)
        i += 1
    return front + rest


def _local_defaults(url: str | None) -> None:
    """``AWS_REGION`` counts as the region (as for the AWS CLI v2 and Lambda; boto3 reads only
    ``AWS_DEFAULT_REGION``); against a local stack, its region and moto's test credentials unless the shell
    sets others."""
    from neruba_tools.local.intrinsics import REGION
    from neruba_tools.stackinfo import is_local_endpoint

    if os.environ.get("AWS_REGION"):
        os.environ.setdefault("AWS_DEFAULT_REGION", os.environ["AWS_REGION"])
    if is_local_endpoint(url):
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            os.environ.pop("AWS_PROFILE", None)
            os.environ["AWS_ACCESS_KEY_ID"] = "testing"
            os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 (moto accepts any)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["local", "run"]:  # its options belong to the local runner
        from neruba_tools.local.run import main as run_main

        return run_main(argv[2:])
    args = build_parser().parse_args(_hoist_global_options(argv))
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    _local_defaults(os.environ.get("AWS_ENDPOINT_URL"))
    if not args.debug:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")  # the shared code's JSON logs stay quiet
    from neruba_tools.stackinfo import StackError, aws_setup_problem

    try:
        with _logs_on_stderr():
            return int(args.func(args))
    except Exception as exc:
        problem = str(exc) if isinstance(exc, (StackError, UsageError)) else aws_setup_problem(exc)
        if args.debug:  # the traceback, then the same line as without --debug
            traceback.print_exc()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"error: {_one_line(exc)}{hint}", file=sys.stderr)
        return 1


class _Stream:
    """``sys.stdout`` or ``sys.stderr`` as it is at each write (a test may swap them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return int(getattr(sys, self.name).write(text))

    def flush(self) -> None:
        getattr(sys, self.name).flush()


@contextlib.contextmanager
def _logs_on_stderr() -> Iterator[None]:
    """The shared code's JSON logs (``--debug``, or a ``POWERTOOLS_LOG_LEVEL`` of the shell) go to standard
    error for the command's duration, so standard output holds only what the command prints."""
    if os.environ.get("POWERTOOLS_LOG_LEVEL") == "CRITICAL":
        yield
        return
    first_use = "neruba.observability" not in sys.modules
    from neruba.observability import logger

    handler: Any = logger.registered_handler
    # made just now, its stream is this moment's sys.stdout: give it back as "standard output", not as
    # that object; not setStream either, which flushes the stream it replaces
    previous = _Stream("stdout") if first_use else handler.stream
    handler.stream = _Stream("stderr")
    try:
        yield
    finally:
        handler.stream = previous


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


if __name__ == "__main__":
    sys.exit(main())
