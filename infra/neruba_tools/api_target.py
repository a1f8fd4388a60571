"""Where the commands that call the API send their requests, and with which key: one rule for all of
them (``events``, ``backfill``, ``credit-notes`` and the other correction groups, ``smoke``).

The base URL is ``--base-url``, else ``--stack``'s ``ApiUrl`` output when a stack is named, else
``NERUBA_BASE_URL``; the key is ``--api-key``, else ``NERUBA_API_KEY``. Both are read when the command runs
(not when the parser is built), so a variable set after import counts.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_arguments(parser: Any, key_help: str = "an admin key", *, again: bool = False) -> None:
    """``--base-url``, ``--stack`` and ``--api-key`` on one command. ``again``: a subcommand of a group
    that takes them already, so they are accepted after it too (``neruba invoices rerun in_...
    --base-url URL``) without its absence resetting what was given before it."""
    kept = {"default": argparse.SUPPRESS} if again else {}
    parser.add_argument(
        "--base-url",
        help="the API's base URL, stage included (default: --stack's ApiUrl, else NERUBA_BASE_URL)",
        **kept,
    )
    parser.add_argument("--stack", help="the CloudFormation stack whose ApiUrl output to call", **kept)
    parser.add_argument("--api-key", help=f"{key_help} (default: NERUBA_API_KEY)", **kept)


def base_url(args: argparse.Namespace) -> str:
    """The API's base URL for this command; StackError names what to give when there is none."""
    from neruba_tools.stackinfo import StackError, endpoint_url, is_local_endpoint, stack_for

    if args.base_url:
        return str(args.base_url)
    if args.stack is not None and not is_local_endpoint(endpoint_url()):
        return str(stack_for(args.stack).output("ApiUrl"))
    from_env = os.environ.get("NERUBA_BASE_URL")
    if from_env:
        return from_env
    raise StackError(
        "give --base-url or NERUBA_BASE_URL (a local stack's API URL is in its banner), or --stack NAME "
        "of a deployed stack"
    )


def api_key(args: argparse.Namespace) -> str | None:
    """The key for this command: ``--api-key``, else ``NERUBA_API_KEY``."""
    return args.api_key or os.environ.get("NERUBA_API_KEY") or None
