"""Command line: ``attentive-connector <command>`` (also ``python -m connector``).

Each command lives with the stage it belongs to and exposes ``add_arguments(parser)`` and
``main(args) -> int``; this module only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from connector import __version__


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...
    def main(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("connector.pipeline.run", "run the connector: consume, route, deliver, commit"),
    "validate": ("connector.rules.tools", "check the config, schemas and rule table without running"),
    "route": ("connector.rules.tools_route", "dry run: show the requests records would become (no network)"),
    "check-auth": ("connector.attentive.check_auth", "call Attentive's /v1/me with the configured key"),
    "sandbox": ("connector.sandbox.cli", "run the local Attentive stand-in"),
    "produce-samples": ("connector.samples", "publish realistic sample events to a topic"),
    "demo": ("connector.devkafka.demo", "broker + sandbox + samples + connector, end to end"),
    "dev": ("connector.devkafka.stack", "local stack (broker, schema registry, sandbox): dev up | dev down"),
}
DLQ_COMMANDS: dict[str, tuple[str, str]] = {
    "replay": ("connector.pipeline.replay", "re-route dead-lettered records through the current rules"),
}


DEV_TOOLING = "connector.devkafka"
"""The development tooling (``dev``, ``demo``): in a checkout's editable install, not in the wheel (see
:mod:`connector.devkafka`), so an installed connector says what to do instead of a traceback."""
DEV_TOOLING_MISSING = "development tooling is not installed: run it from a checkout (make up)"


DESCRIPTION = (
    "Kafka connector feeding Attentive: consume Avro events, route them through a rule table, deliver, "
    "commit, dead-letter what can never be delivered. Also: python -m connector."
)


def _load(module: str) -> _Command:
    return cast(_Command, importlib.import_module(module))


def _selected(argv: Sequence[str]) -> list[str]:
    """The command words in ``argv`` (``["dlq", "replay"]``, ``["run"]``): the leading non-option tokens."""
    words: list[str] = []
    for token in argv:
        if token.startswith("-"):
            break
        words.append(token)
    return words[:2]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` is imported (``None``: every command, e.g. for docs).

    Importing a command pulls in its stage (confluent-kafka, aiohttp, pydantic models, ...), so loading all
    of them for one would cost most of the start-up time.
    """
    words = None if argv is None else _selected(argv)

    def wanted(*path: str) -> bool:
        return words is None or list(path) == words[: len(path)]

    parser = argparse.ArgumentParser(prog="attentive-connector", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"attentive-connector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if wanted(name):
            _wire(p, module)
    dlq = sub.add_parser("dlq", help="dead-letter topic tools", description="dead-letter topic tools")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    for name, (module, help_) in DLQ_COMMANDS.items():
        p = dlq_sub.add_parser(name, help=help_, description=help_)
        if wanted("dlq", name):
            _wire(p, module)
    return parser


def _wire(parser: argparse.ArgumentParser, module: str) -> None:
    mod = _load(module)
    mod.add_arguments(parser)
    parser.set_defaults(run_command=mod.main)


def dev_tooling_installed() -> bool:
    """True in a checkout (its editable install maps the whole ``connector`` folder); False from the wheel."""
    return importlib.util.find_spec(DEV_TOOLING) is not None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = _selected(argv)
    module = COMMANDS.get(words[0], ("", ""))[0] if words else ""
    if module.startswith(DEV_TOOLING + ".") and not dev_tooling_installed():
        print(f"error: {DEV_TOOLING_MISSING}", file=sys.stderr)  # before parsing: its flags are not known
        return 2
    args = build_parser(argv).parse_args(argv)
    from connector.errors import ConfigError

    try:
        return int(args.run_command(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
