"""Publish saved runs into the shared PostgreSQL history.

    python scripts/publish.py RUN_OR_FOLDER... [--db URL]
    python scripts/publish.py --migrate [--db URL]

The database URL comes from --db or the environment variable LENET_DB_URL, e.g.
postgresql://bench@db.example:5432/lenet (keep the password in PGPASSWORD or
~/.pgpass; a password in the URL is accepted and never printed). The command
creates the tables on first use and migrates an older schema itself.

Each run is stored in one transaction, once: a run published again (by this or
another runner, or from a copy) is reported as "already there". Each input gets
one line; a file that is not a saved run gets one line on stderr and the others
are still published. docs/database.md has the schema and the filters.

exit status (the contract of every command: docs/exit-codes.md):
  0  every run is in the database (published now or already there)
  2  bad input: usage, no or malformed URL, a path that is missing or not a saved run
     (the good runs were still published)
  3  the database cannot be used: unreachable, credentials refused, no such database,
     a schema newer than this code, or no right to create or migrate it; nothing written
  4  the database failed partway (connection lost, a run refused), or Ctrl-C: the runs
     reported as published are stored whole, the rest are not; publishing again finishes the job
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lenet.analysis.formatting import single_line
from lenet.cli import command_parser
from lenet.cli.source_options import add_db_option
from lenet.exits import EXIT_INTERRUPTED, command
from lenet.runs.postgres.connection import (
    ENV_VAR,
    EXIT_BAD_INPUT,
    EXIT_DATABASE,
    EXIT_OK,
    StoreError,
    database_url,
    looks_like_database_url,
    redact_url,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser("publish.py", __doc__)
    parser.add_argument("runs", type=Path, nargs="*", metavar="RUN_OR_FOLDER", help="saved-run files or folders")
    add_db_option(parser, f"the database to publish into (default, or --db alone: ${ENV_VAR})")
    parser.add_argument(
        "--migrate", action="store_true", help="create or migrate the schema, then publish the runs given (if any)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems and the summary")
    args = parser.parse_args(argv)
    if not args.runs and not args.migrate:
        parser.error("name saved-run files or folders to publish (or --migrate to only create or migrate the schema)")
    return args


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    urls = [str(path) for path in args.runs if looks_like_database_url(str(path))]
    if urls:
        print(f"error: {urls[0]} is a database URL, not a saved run; name the database with --db URL", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        url = database_url(args.db or None)
        from lenet.runs.postgres.write import Outcome, PublishSummary, publish_paths  # psycopg once a database is named
    except StoreError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return error.exit_code
    except ImportError as error:
        if not (error.name or "").startswith("psycopg"):
            raise
        print("error: publishing needs the psycopg driver: pip install 'psycopg[binary]'", file=sys.stderr)
        return EXIT_DATABASE

    seen: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        seen.append(outcome)
        if outcome.status == "bad":
            print(f"error: {outcome.source}: {outcome.detail}", file=sys.stderr)
        elif not args.quiet:
            print(outcome.line(), flush=True)

    try:
        summary = publish_paths(url, args.runs, report=report, notice=print)
    except StoreError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # the run being stored when it came is rolled back whole; the ones reported are stored
        done = PublishSummary(outcomes=seen)
        print(f"error: interrupted: {done.line()} into {redact_url(url)}; publishing again finishes", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{summary.line()} into {redact_url(url)}")
    return summary.exit_code if summary.outcomes else EXIT_OK
