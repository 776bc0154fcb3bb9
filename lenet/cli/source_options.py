"""The command-line face of a run source, declared once for every command that reads runs.

A SOURCE is what :func:`lenet.runs.source.open_source` takes: saved-run files or folders, or
one ``postgresql://`` URL. ``--db URL`` is the same as giving the URL as the SOURCE, and
``--db`` alone takes the URL from ``$LENET_DB_URL``. The run filters (``--commit``,
``--branch``, ``--since``, ...) mean the same for files and the database.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

from lenet.runs.selection import QueryError, RunFilter, parse_commit_range, parse_when
from lenet.runs.source import RunSource, open_source

DB_HELP = "read runs from this PostgreSQL database (the same as a postgresql:// SOURCE); --db alone: $LENET_DB_URL"


def add_db_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str = DB_HELP) -> None:
    """``--db [URL]``: the one declaration of the option (``""`` when given alone)."""
    parser.add_argument("--db", nargs="?", const="", default=None, metavar="URL", help=help)


def source_from_arguments(sources: Sequence[str], db: str | None) -> RunSource:
    """The source named by positional SOURCE texts and ``--db``; QueryError (exit 2) for a mix."""
    if db is not None and sources:
        raise QueryError("give saved-run files or folders, or a database, not both")
    return open_source([db] if db is not None else list(sources))


def _when(text: str) -> datetime:
    try:
        return parse_when(text)
    except QueryError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _range(text: str) -> tuple[str, str]:
    try:
        return parse_commit_range(text)
    except QueryError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_selection_arguments(parser: argparse.ArgumentParser, latest_commit: bool = False, db: bool = True) -> None:
    """``--db`` (unless ``db`` is False) and the filters beyond the report's own (--variant, --phase, ...)."""
    group = parser.add_argument_group(
        "shared database and run selection", "the filters apply to files and to the database alike (docs/database.md)"
    )
    if db:
        add_db_option(group)
    group.add_argument(
        "--commit",
        action="append",
        default=[],
        metavar="SHA",
        help="keep runs of commits starting with SHA; repeatable",
    )
    group.add_argument(
        "--commit-range", type=_range, default=None, metavar="A..B", help="keep runs of commits after A up to B"
    )
    group.add_argument("--branch", action="append", default=[], help="keep runs made on this branch; repeatable")
    group.add_argument("--since", type=_when, default=None, metavar="WHEN", help="keep runs from WHEN: 2026-01-31, 30d")
    group.add_argument("--until", type=_when, default=None, metavar="WHEN", help="keep runs before WHEN")
    group.add_argument(
        "--latest-processes", type=int, default=None, metavar="N", help="keep each machine's newest N runs (processes)"
    )
    if latest_commit:
        group.add_argument(
            "--latest-commit", action="store_true", help="keep each machine's runs of the commit of its newest run"
        )


def selection_from_arguments(args: argparse.Namespace) -> RunFilter:
    """The RunFilter of parsed options (those of add_selection_arguments and the report's own, where present)."""
    return RunFilter(
        machines=getattr(args, "machine", []) or [],
        commits=args.commit,
        commit_range=args.commit_range,
        branches=args.branch,
        since=args.since,
        until=args.until,
        variants=getattr(args, "variant", []) or [],
        phases=getattr(args, "phase", []) or [],
        batch_sizes=getattr(args, "batch_size", []) or [],
        latest_commit=bool(getattr(args, "latest_commit", False)),
        latest_processes=args.latest_processes,
    )
