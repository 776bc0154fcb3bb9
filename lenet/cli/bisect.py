"""Find the commit that made the benchmarks slower: a bisection between a good and a bad commit, each probe measured.

Each commit it measures is checked out into a throwaway git worktree and measured by
``pytest bench`` in fresh processes (as ab.py measures each side): one process that counts
instructions under valgrind where valgrind is installed (its times decide nothing, so it times
the fewest rounds and skips the metrics pass), else --processes processes timed.
The two ends are measured first; the benchmarks that differ between them are the step, and
each probe is decided "like good", "like bad" or "between" by where it lies on that step
(docs/culprits.md); by time, ends that show no step and probes "between" them get another
batch of --processes processes (up to 3). A commit that cannot run, or whose cases fail the
correctness gate, is skipped with its reason. Measurements already saved for a commit on this machine (same
fingerprint) under --keep are reused. It names the first bad commit with its subject, the size
of its step and the evidence (the values of it and its parent), as Markdown and JSON.

It refuses a dirty tree, unknown refs, a good commit that is not an ancestor of bad, and more
than --max-commits commits; worktrees are removed whatever happens, Ctrl-C included.

Exit status: 0 the first bad commit is named, 2 bad input (also a good or bad commit that cannot
be measured), 7 good and bad do not differ, 4 no single commit could be named (the commits left
were skipped) or interrupted (Ctrl-C, SIGTERM). Never 1.

examples:
  python scripts/culprit.py --good v1.0 --bad main -- --variants cpu-contiguous-fp32-eager \\
      --phases forward_inference --batch-sizes 64 --threads 1
  python scripts/culprit.py --good 1a2b3c4 --bad 5d6e7f8 --json culprit.json --markdown culprit.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lenet.analysis.formatting import single_line
from lenet.bisect import Measurement, bisect
from lenet.bisect_render import bisect_json, bisect_markdown
from lenet.cli import command_parser
from lenet.cli.ab import DEFAULT_PYTEST
from lenet.cli.gate_options import COUNTED_ENVIRONMENT, COUNTED_TIMING, OutputError, counting_arguments, publish
from lenet.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NO_DIFFERENCE, EXIT_OK, command
from lenet.runs.files import read_runs
from lenet.source import REPO, ForeignCodeError
from lenet.suite import run_suite

# The project's one contract (lenet/exits.py, docs/exit-codes.md); never 1, which means "regression".
EXIT_CULPRIT = EXIT_OK
EXIT_UNDECIDED = EXIT_INTERRUPTED  # only skipped commits remain: done in part, the range is named


class BisectInputError(ValueError):
    """Bad input: one line for the user, exit 2."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = command_parser("culprit.py", __doc__)
    parser.add_argument("--good", required=True, metavar="REF", help="a commit without the slowdown")
    parser.add_argument("--bad", required=True, metavar="REF", help="a later commit with it")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the finding as JSON")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE", help="write it as Markdown")
    parser.add_argument("--max-commits", type=int, default=1000, help="refuse a longer range (default 1000)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the git checkout to bisect (default: this one)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="where measurements are saved and reused (default results/bisect)"
    )
    parser.add_argument(
        "--instructions", choices=("auto", "on", "off"), default="auto", help="count instructions (auto: if valgrind)"
    )
    parser.add_argument("--processes", type=int, default=5, help="timed processes a commit without counts")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="options for pytest bench after --")
    return parser.parse_args(argv)


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def resolve(repo: Path, ref: str, role: str) -> str:
    found = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise BisectInputError(f"--{role} {ref!r} is not a commit, branch or tag of {repo}")
    return found.stdout.strip()


def commit_range(repo: Path, good_ref: str, bad_ref: str, max_commits: int) -> tuple[str, str, list[str]]:
    """(good, bad, good's first-parent descendants up to bad): every refusal is a BisectInputError."""
    if git(repo, "rev-parse", "--show-toplevel").returncode != 0:
        raise BisectInputError(f"--repo {repo} is not a git checkout")
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip()
    if dirty:
        raise BisectInputError(
            f"the tree {repo} has uncommitted changes ({dirty.splitlines()[0].strip()}); commit or stash"
        )
    good, bad = resolve(repo, good_ref, "good"), resolve(repo, bad_ref, "bad")
    if good == bad or git(repo, "merge-base", "--is-ancestor", good, bad).returncode != 0:
        raise BisectInputError(f"--good {good_ref} is not an older ancestor of --bad {bad_ref}; is it newer?")
    commits = git(repo, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}").stdout.split()
    if len(commits) > max_commits:
        raise BisectInputError(f"{len(commits)} commits from good to bad; over --max-commits {max_commits}")
    return good, bad, commits


class Prober:
    """Measures commits of ``repo`` in worktrees (or reuses saved runs of this machine), saving under ``keep``."""

    def __init__(self, repo: Path, keep: Path, pytest_args: list[str], counting: list[str], processes: int) -> None:
        self.repo, self.keep, self.pytest_args, self.counting = repo, keep, pytest_args, counting
        self.processes = 1 if counting else processes
        self.metric = "instructions" if counting else "time"
        self.fingerprint: str | None = None
        self.measured: dict[str, Measurement] = {}
        self.seconds = 0.0

    def __call__(self, commit: str) -> Measurement:
        if commit not in self.measured:
            self.measured[commit] = self._reused(commit) or self._measure(commit)
        return self.measured[commit]

    def more(self, commit: str) -> Measurement:
        """The commit with another batch of processes: they join its saved runs, and all are read again."""
        self.measured[commit] = self._measure(commit)
        return self.measured[commit]

    def _reused(self, commit: str) -> Measurement | None:
        folder = self.keep / commit
        if self.fingerprint is None or not folder.is_dir():
            return None
        runs = [r for r in read_runs([folder]).runs if r.machine.fingerprint == self.fingerprint]
        found = measurement_of(commit, self.metric, runs)
        if found.problem or len(runs) < self.processes:
            return None
        return Measurement(commit, self.metric, found.values, reused=True)

    def _measure(self, commit: str) -> Measurement:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lenet-bisect-") as tmp:
            tree = Path(tmp) / commit[:12]
            added = git(self.repo, "worktree", "add", "--detach", str(tree), commit)
            if added.returncode != 0:
                return Measurement(commit, self.metric, problem=f"cannot check it out: {single_line(added.stderr)}")
            try:
                return self._run_processes(commit, tree)
            finally:
                git(self.repo, "worktree", "remove", "--force", str(tree))
                self.seconds += time.monotonic() - started

    def _run_processes(self, commit: str, tree: Path) -> Measurement:
        folder = self.keep / commit
        folder.mkdir(parents=True, exist_ok=True)
        # a counting probe's times decide nothing: the fewest rounds, and no metrics pass (COUNTED_TIMING)
        counted = [*self.counting, *COUNTED_TIMING] if self.counting else []
        environment = COUNTED_ENVIRONMENT if self.counting else None
        for index in range(self.processes):
            output = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{index:02d}.json"
            log = output.with_suffix(".log")
            try:
                code = run_suite(output, [*self.pytest_args, *counted], tree=tree, log=log, env=environment)
            except ForeignCodeError as error:
                return Measurement(commit, self.metric, problem=single_line(str(error)))
            if code not in (0, 1) or not output.is_file():
                tail = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
                return Measurement(commit, self.metric, problem=f"pytest exit {code}: {' '.join(tail)}"[:300])
        runs = read_runs([folder]).runs
        if runs and self.fingerprint is None:
            self.fingerprint = runs[0].machine.fingerprint
        return measurement_of(commit, self.metric, [r for r in runs if r.machine.fingerprint == self.fingerprint])


def measurement_of(commit: str, metric: str, runs: Sequence) -> Measurement:
    """One commit's values per benchmark from its saved runs (counts or time medians).

    By time, a process the stability checks flagged (a busy machine, drifting rounds) is left out
    wherever the benchmark has unflagged ones; counts keep every process, since load does not move them.
    """
    values: dict[str, list[float]] = {}
    flagged: dict[str, list[float]] = {}
    why_not: set[str] = set()
    for run in runs:
        for result in run.results:
            counts = result.record.counts if result.record is not None else None
            value = result.stats.median if metric == "time" else counts.instructions if counts else None
            stability = result.record.stability if result.record is not None else None
            disturbed = metric == "time" and stability is not None and stability.flagged
            if value:
                (flagged if disturbed else values).setdefault(result.fullname or result.name, []).append(float(value))
            elif counts is not None and counts.instructions_unavailable:
                why_not.add(counts.instructions_unavailable)
    for name, disturbed_values in flagged.items():
        values.setdefault(name, disturbed_values)  # only flagged processes: they are all there is
    if not values:
        reason = f" ({'; '.join(sorted(why_not))})" if why_not else ""
        return Measurement(commit, metric, problem=f"no {metric} saved for any benchmark{reason}")
    return Measurement(commit, metric, {name: tuple(v) for name, v in values.items()})


def measure_ends(prober: Prober, good: str, bad: str) -> tuple[Measurement, Measurement]:
    """Good and bad, side by side (two processes at once take as long as one on two cores under valgrind)."""
    for commit in (good, bad):  # a fingerprint from an earlier bisect's runs lets both ends be reused
        prober.fingerprint = prober.fingerprint or _saved_fingerprint(prober.keep / commit)
    with ThreadPoolExecutor(max_workers=2) as pool:
        ends = list(pool.map(prober, (good, bad)))
    for role, end in zip(("good", "bad"), ends, strict=True):
        if end.problem:
            raise BisectInputError(f"the {role} commit {end.commit[:12]} cannot be measured: {end.problem}")
    return ends[0], ends[1]


def _saved_fingerprint(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    runs = read_runs([folder]).runs
    return runs[0].machine.fingerprint if runs else None


def run(args: argparse.Namespace) -> int:
    good, bad, commits = commit_range(args.repo, args.good, args.bad, args.max_commits)
    pytest_args = [a for a in args.pytest_args if a != "--"] or DEFAULT_PYTEST
    if args.processes < 2 and args.instructions == "off":
        raise BisectInputError(f"--processes {args.processes}: timing needs at least 2 processes a commit")
    try:
        counting, why_not = counting_arguments(args.instructions)
    except ValueError as error:
        raise BisectInputError(str(error)) from None
    keep = args.keep or args.repo / "results" / "bisect"
    prober = Prober(args.repo, keep, pytest_args, counting, args.processes)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    say(f"{len(commits)} commits after good; measuring by {prober.metric}{f' ({why_not})' if why_not else ''}")
    started = time.monotonic()
    good_m, bad_m = measure_ends(prober, good, bad)
    result = bisect(commits, good_m, bad_m, prober, say, more=prober.more if not counting else None)
    subject = git(args.repo, "log", "-1", "--format=%s", result.culprit).stdout.strip() if result.culprit else ""
    document = bisect_json(result, prober.measured, good, subject, time.monotonic() - started)
    try:
        publish(bisect_markdown(document), document, args.markdown, args.json)
    except OutputError as error:
        raise BisectInputError(str(error)) from None
    if not result.step:
        return EXIT_NO_DIFFERENCE
    return EXIT_CULPRIT if result.culprit else EXIT_UNDECIDED


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BisectInputError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (lenet.exits); the worktrees are gone: each is removed in a finally
        git(args.repo, "worktree", "prune")
        print("interrupted; worktrees removed", file=sys.stderr)
        return EXIT_INTERRUPTED
