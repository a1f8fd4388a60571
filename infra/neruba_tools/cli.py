"""The ``neruba`` operator command.

    neruba config check                      every missing or invalid setting, exit 1 if any
    neruba keys create --scope ingest [--scope read] [--name NAME]
    neruba keys list | revoke KEY_ID | rotate KEY_ID
    neruba local run [--port 8080]           the whole stack on localhost (what `make run` does)
    neruba openapi > docs/openapi.json       the API reference, generated from the routes
    neruba sweep [--check NAME] [--from ISO --to ISO] [--stack NAME]   the consistency sweep, now
    neruba dlq list | show QUEUE | redrive QUEUE [--max N] | status QUEUE   dead-letter queues
    neruba smoke --base-url URL --api-key KEY                  the post-deploy smoke test
    neruba migrate [--list] [--stack NAME]                     data migrations (OpsTable MIG#)

Commands that touch AWS use the ``NERUBA_*`` settings of the environment (``neruba config check`` tells
which are missing) and the usual AWS credentials; ``--endpoint-url`` points them at a local stack's moto.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _config_check(_: argparse.Namespace) -> int:
    from neruba.settings import check_environment

    problems = check_environment(os.environ)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} setting(s) missing or invalid.", file=sys.stderr)
        return 1
    print("Configuration OK.")
    return 0


def _keys_repo():  # type: ignore[no-untyped-def]
    from neruba.dal.keys import KeysRepository
    from neruba.settings import get_settings

    return KeysRepository(get_settings().keys_table)


def _keys_create(args: argparse.Namespace) -> int:
    from neruba.security.apikeys import parse_scopes

    scopes = parse_scopes(" ".join(args.scope))
    if not scopes:
        print("Give at least one --scope of ingest, read, admin.", file=sys.stderr)
        return 2
    plaintext, key = _keys_repo().create(scopes, name=args.name)
    print(f"Key id: {key.key_id}")
    print(f"Scopes: {' '.join(sorted(key.scopes))}")
    print(f"API key: {plaintext}")
    print("Store it now: only its hash is kept.", file=sys.stderr)
    return 0


def _keys_list(_: argparse.Namespace) -> int:
    print(f"{'KEY':<22} {'NAME':<20} {'SCOPES':<20} {'CREATED':<26} STATUS")
    for key in _keys_repo().list():
        status = "active" if key.active else f"revoked {key.revoked_at}"
        scopes = " ".join(sorted(key.scopes))
        print(f"{key.prefix:<22} {key.name[:20]:<20} {scopes:<20} {key.created_at:<26} {status}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from neruba.dal.keys import KeyNotFoundError
    from neruba.settings import get_settings

    try:
        key = _keys_repo().revoke(args.key_id)
    except KeyNotFoundError:
        print(f"No key {args.key_id}.", file=sys.stderr)
        return 1
    ttl = get_settings().authorizer_cache_ttl_seconds
    print(f"Revoked {key.prefix} at {key.revoked_at}; cached authorizations end within {ttl} s.")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from neruba.dal.keys import KeyNotFoundError

    try:
        plaintext, key = _keys_repo().rotate(args.key_id)
    except (KeyNotFoundError, ValueError) as exc:
        print(f"Cannot rotate {args.key_id}: {exc}", file=sys.stderr)
        return 1
    print(f"Key id: {key.key_id} (replaces {args.key_id}, now revoked)")
    print(f"API key: {plaintext}")
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
    parser.add_argument("--endpoint-url", help="AWS endpoint (e.g. a local stack's moto URL)")
    commands = parser.add_subparsers(dest="command", required=True)

    config = commands.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    config.add_parser("check", help="list missing or invalid settings").set_defaults(func=_config_check)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key (shown once)")
    create.add_argument("--scope", action="append", required=True, help="ingest, read or admin (repeatable)")
    create.add_argument("--name", default="", help="what the key is for")
    create.set_defaults(func=_keys_create)
    keys.add_parser("list", help="list keys (prefix only)").set_defaults(func=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_keys_revoke)
    rotate = keys.add_parser("rotate", help="replace a key by a new one with the same scopes")
    rotate.add_argument("key_id")
    rotate.set_defaults(func=_keys_rotate)

    commands.add_parser("openapi", help="print the OpenAPI document").set_defaults(func=_openapi)

    from neruba_tools import dlq, migrate, smoke, sweep

    for module in (sweep, dlq, smoke, migrate):
        module.add_parser(commands)

    local = commands.add_parser("local", help="the local stack").add_subparsers(dest="action", required=True)
    run = local.add_parser("run", help="start the whole stack on localhost", add_help=False)
    run.add_argument("rest", nargs=argparse.REMAINDER)
    run.set_defaults(func=_local_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["local", "run"]:  # its options belong to the local runner
        from neruba_tools.local.run import main as run_main

        return run_main(argv[2:])
    args = build_parser().parse_args(argv)
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    from neruba_tools.stackinfo import StackError

    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
