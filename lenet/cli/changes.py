"""Steps in the history of saved runs: which commit made a benchmark slower (or faster).

Per machine fingerprint and benchmark, the runs are put in commit order (git's first-parent
order of this checkout where it has every commit, else commit time) and the instruction counts
and time medians are searched for steps (docs/culprits.md). Each step is printed with the last
measured commit before it and the first after (and the commits between that no run measured),
its size in % with a 95% interval, and how sure it is; a regression also gets the culprit.py
command that finds the commit inside the range. A one-run spike is not a step. Runs flagged by
the stability checks are left out of the time histories (counts keep them) and listed.

Exit status: 0 when no regression step lies in the window, 1 when one does, 2 for bad input
(a SOURCE that cannot be read, an unknown --since commit), 3 when the database cannot be used.

examples:
  python scripts/changes.py
  python scripts/changes.py results/benchmarks --since v1.2 --json changes.json
  python scripts/changes.py postgresql://bench@db/lenet
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lenet.analysis.changes import Change, History, find_changes, first_parent_order, samples_from_runs
from lenet.analysis.formatting import single_line
from lenet.cli import command_parser
from lenet.cli.source_options import add_db_option, source_from_arguments
from lenet.exits import command
from lenet.runs.files import default_paths
from lenet.runs.postgres.connection import EXIT_BAD_INPUT, EXIT_DATABASE, EXIT_OK, StoreError
from lenet.runs.selection import QueryError
from lenet.source import REPO

EXIT_REGRESSION = 1


class InputError(ValueError):
    """Bad input: one line for the user, exit 2."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = command_parser("changes.py", __doc__)
    parser.add_argument(
        "inputs", nargs="*", metavar="SOURCE", help="saved-run files or folders, or one postgresql:// URL"
    )
    add_db_option(parser)
    parser.add_argument(
        "--since", metavar="REF", default=None, help="report only steps whose first run after is a commit after REF"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the steps as JSON")
    parser.add_argument("--repo", type=Path, default=REPO, help="the git checkout that orders commits")
    return parser.parse_args(argv)


def resolve(repo: Path, ref: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InputError(f"--since {ref!r} is not a commit of {repo}; give a commit, tag or branch it has")
    return result.stdout.strip()


def in_window(change: Change, since: str | None, order: list[str]) -> bool:
    """Whether the step's first commit after lies after ``since`` in first-parent order (always, without a
    ``since``, or when either commit is off that line: then nothing is left out)."""
    after = next((i for i, sha in enumerate(order) if sha.startswith(change.after)), None)
    if since is None or since not in order or after is None:
        return True
    return after > order.index(since)


def render(changes: list[Change], histories: list[History], ordering: str, since: str | None) -> str:
    lines = [f"{len(histories)} histories (machine x benchmark x metric), commits in {ordering} order"]
    if since:
        lines.append(f"window: steps after {since[:12]}")
    if not changes:
        lines.append("no step found")
    for change in changes:
        kind = "REGRESSION" if change.regression else "improvement"
        between = f" ({len(change.unmeasured)} commits between, unmeasured)" if change.unmeasured else ""
        lines.append(
            f"{kind}: {change.benchmark} {change.metric} {100 * (change.ratio - 1):+.2f}% "
            f"[{100 * (change.low - 1):+.2f}%, {100 * (change.high - 1):+.2f}%], confidence {change.confidence:.3f}: "
            f"last before {change.before[:12]}, first after {change.after[:12]}{between}; "
            f"{change.runs_before} runs before, {change.runs_after} after; machine {change.machine[:12]}"
        )
        if change.regression:
            lines.append(f"  find the commit: python scripts/culprit.py --good {change.before} --bad {change.after}")
    for history in histories:
        if history.left_out:
            lines.append(
                f"left out of {history.benchmark} {history.metric} (flagged unstable): {len(history.left_out)} runs: "
                + "; ".join(history.left_out[:5])
                + (" ..." if len(history.left_out) > 5 else "")
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    since = resolve(args.repo, args.since) if args.since else None
    source = source_from_arguments(args.inputs or [str(p) for p in default_paths(Path("results"))], args.db)
    found = source.runs()
    for problem in found.problems:
        print(f"warning: {single_line(problem)}", file=sys.stderr)
    if not found.runs:
        raise InputError(f"no saved runs in {source.describe()}")
    order = first_parent_order(args.repo)
    changes, histories, ordering = find_changes(samples_from_runs(found.runs), order)
    changes = [c for c in changes if in_window(c, since, order)]
    print(render(changes, histories, ordering, since))
    if args.json is not None:
        document = {"ordering": ordering, "since": since, "changes": [c.to_dict() for c in changes]}
        document["left_out"] = {f"{h.benchmark} {h.metric}": h.left_out for h in histories if h.left_out}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return EXIT_REGRESSION if any(change.regression for change in changes) else EXIT_OK


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (InputError, QueryError, OSError) as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_DATABASE
