"""Bad input, field by field: a valid saved run and a valid trace, each field swapped for hostile values.

Whatever one file holds, the report and compare commands end as documented: at most one
warning line per bad file (exactly one when a value is not what its field must be), the
rest reported, no traceback, a documented exit status, nothing written outside the output
folder, and no value turned into Markdown. Every command runs in this process, on small
runs, so the hundreds of inputs take seconds; a few draw their plots too (matplotlib was
one of the crashes). One report reads every bad copy of a field at once, each warning
naming its file (a report per copy cost twice the time); compare reads them one at a time,
since a comparison holds one candidate.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lenet.cli import compare as compare_cli
from lenet.cli import report as report_cli
from lenet.paths import is_safe_name

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = sorted((FIXTURES / "runs" / "lenet-cpu").rglob("*.json"))
TRACE_RUN = FIXTURES / "traces" / "20261127-124427-2af05b"
OTHER_TRACE_RUN = FIXTURES / "traces" / "20261127-124421-6815fe"
TRACE_CASE = "cpu-contiguous-fp32-eager-train_step-sgd-b2"
# Beside the traces, a run of another project's code: a benchmark table, and no benchmark plots to draw.
FOREIGN_RUN = next((FIXTURES / "runs" / "other-pb4").rglob("*.json"))

MISSING = object()  # the key is removed
VALUES: dict[str, Any] = {
    "missing": MISSING,
    "null": None,
    "NaN": float("nan"),
    "Inf": float("inf"),
    "-Inf": float("-inf"),
    "zero": 0,
    "negative": -1.5,
    "true": True,
    "text": "fast",
    "empty text": "",
    "list": [1, "a"],
    "object": {"a": 1},
    "path": "../../escaped",
    "dot-dot": "..",
    "newline": "x\n# injected\n| a | b |\n| --- | --- |",
    "pipe and backtick": "a|b`c",
    "HTML": "<script>alert(1)</script>",
    "very long": "L" * 5000,
}
# Inputs whose report is drawn too (the plots read these values, and a NaN once crashed matplotlib):
# a few, as drawing takes about a second a report.
DRAWN = {
    ("b.stats.q1", "Inf"),
    ("b.stats.min", "NaN"),
    ("b.stats.iqr", "text"),
    ("b.stats.data", "list"),
    ("datetime", "text"),
    ("machine_info.fingerprint", "path"),
    ("b.extra_info.device", "path"),
    ("b.extra_info.variant", "very long"),
    ("ev.dur", "text"),
    ("ev.ts", "NaN"),
}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _absent(v: Any) -> bool:
    return v is MISSING or v is None


def _count(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


# What each kind of field accepts; any other value must make exactly one warning line for its file.
LEGAL: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: _absent(v) or isinstance(v, str),
    "name": lambda v: isinstance(v, str) and v != "",
    "event name": lambda v: isinstance(v, str),
    "fingerprint": lambda v: _absent(v) or v == "" or is_safe_name(v),  # none or empty: the hash of the fields
    "placing name": is_safe_name,  # device: where the row goes, and what its plots are named
    "placing name or absent": lambda v: _absent(v) or is_safe_name(v),  # phase: without one, not a lenet-bench row
    "positive time": lambda v: _number(v) and v > 0,
    "statistic": lambda v: _absent(v) or (_number(v) and v >= 0),
    "count": lambda v: _absent(v) or _count(v, 0),
    "positive count": lambda v: _count(v, 1),
    "positive count or absent": lambda v: _absent(v) or _count(v, 1),
    "times": lambda v: _absent(v) or v == [] or (isinstance(v, list) and all(_number(x) and x > 0 for x in v)),
    "object or absent": lambda v: _absent(v) or isinstance(v, dict),
    "number or absent": lambda v: _absent(v) or _number(v),
    "start": _number,
    "duration": lambda v: _number(v) and v >= 0,
    "ISO time or absent": _absent,  # none of the values is an ISO time
    "never": lambda v: False,  # a stats object without a median, another schema
    "no error": lambda v: _absent(v) or v in ("", [], {}, 0, False),  # profile.json errors: any error is a line
    "usual version": lambda v: _absent(v) or v == "",  # another torch version is noted in a line, even as text
}

# Saved-run fields: (path in the run, kind). "b." fields are the first benchmark's.
RUN_FIELDS = [
    ("datetime", "ISO time or absent"),
    ("version", "text"),
    ("commit_info", "object or absent"),
    ("commit_info.id", "text"),
    ("machine_info", "object or absent"),
    ("machine_info.fingerprint", "fingerprint"),
    ("machine_info.cpu_model", "text"),
    ("machine_info.torch_version", "text"),
    ("b.name", "name"),
    ("b.group", "text"),
    ("b.stats", "never"),
    ("b.stats.median", "positive time"),
    ("b.stats.iqr", "statistic"),
    ("b.stats.q1", "statistic"),
    ("b.stats.min", "statistic"),
    ("b.stats.rounds", "count"),
    ("b.stats.data", "times"),
    ("b.extra_info", "object or absent"),
    ("b.extra_info.variant", "text"),
    ("b.extra_info.device", "placing name"),
    ("b.extra_info.phase", "placing name or absent"),
    ("b.extra_info.batch_size", "positive count"),
    ("b.extra_info.optimizer", "text"),
    ("b.extra_info.instructions", "statistic"),
]

# Trace fields: (file, path in it, kind). "op." is the first operator row, "ev." the first CPU operator event.
TRACE_FIELDS = [
    ("profile.json", "schema", "never"),  # not our profile.json: one line; its table and trace still load
    ("profile.json", "variant", "text"),
    ("profile.json", "phase", "text"),
    ("profile.json", "torch_version", "usual version"),
    ("profile.json", "steps", "positive count or absent"),
    ("profile.json", "trace_file", "text"),
    ("profile.json", "errors", "no error"),
    ("operators.json", "steps", "positive count"),
    ("operators.json", "op.name", "name"),
    ("operators.json", "op.self_cpu_us", "number or absent"),
    ("operators.json", "op.calls", "number or absent"),
    ("trace", "ev.ts", "start"),
    ("trace", "ev.dur", "duration"),
    ("trace", "ev.name", "event name"),
]


def put(document: Any, path: str, value: Any) -> None:
    *parents, key = path.split(".")
    for part in parents:
        document = document[int(part)] if isinstance(document, list) else document[part]
    if value is MISSING:
        document.pop(key, None)
    else:
        document[key] = copy.deepcopy(value)


@dataclass
class Outcome:
    command: str
    field: str
    value: str
    status: int
    warnings: int
    errors: int


OUTCOMES: list[Outcome] = []  # what each command did with each input (see summary())


def summary() -> str:
    """A Markdown table: per command, how many inputs ended with each exit status and warning count."""
    counts: dict[tuple[str, int, int, int], int] = {}
    for o in OUTCOMES:
        key = (o.command, o.status, o.warnings, o.errors)
        counts[key] = counts.get(key, 0) + 1
    lines = ["| command | exit | warning lines | error lines | inputs |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {c} | {s} | {w} | {e} | {n} |" for (c, s, w, e), n in sorted(counts.items())]
    return "\n".join(lines)


def small_run(path: Path) -> dict[str, Any]:
    """A valid run cut to its train steps (6 benchmarks): quick to load, compare and draw."""
    run = json.loads(path.read_text())
    run["benchmarks"] = [b for b in run["benchmarks"] if b["extra_info"]["phase"] == "train_step"]
    return run


def run_command(main: Callable[[list[str]], int], args: list[Any], capsys: pytest.CaptureFixture) -> tuple:
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    warnings = [line for line in lines if line.startswith("warning: ")]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(warnings) + len(errors) == len(lines), captured.err  # nothing else: no traceback
    return status, captured.out, warnings, errors


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def assert_plain_markdown(markdown: str, shown: list[str]) -> None:
    """Our structure only: no heading, table row or HTML made of a value; every table row as wide as its header."""
    for line in markdown.splitlines():
        assert not line.lstrip("#").strip().startswith("injected"), line
    table: list[int] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            table.append(len(re.findall(r"(?<!\\)\|", line)))
        elif table:
            assert len(set(table)) == 1, markdown
            table = []
    assert not re.search(r"<[A-Za-z/!?]", re.sub(r"(`+).*?\1", "", markdown))
    for heading in shown:
        assert heading in markdown


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("runs")
    for index, path in enumerate(RUNS):
        (folder / f"{index}.json").write_text(json.dumps(small_run(path)))
    return folder / "0.json", folder / "1.json"


def bad_runs(folder: Path, good: Path, field: str) -> dict[str, Path]:
    """A copy of ``good`` for each value of VALUES in ``field``, each a process of its own (its own time)."""
    paths = {}
    for index, (label, value) in enumerate(VALUES.items()):
        run = json.loads(good.read_text())
        run["datetime"] = f"2026-11-27T13:{index:02d}:00+00:00"  # another process than `other`'s and each other's
        put(run, field.replace("b.", "benchmarks.0.", 1) if field.startswith("b.") else field, value)
        paths[label] = folder / re.sub(r"\W", "_", label) / "bad.json"
        paths[label].parent.mkdir(parents=True)
        paths[label].write_text(json.dumps(run))
    return paths


def warnings_of(warnings: list[str], starts: dict[str, str]) -> dict[str, list[str]]:
    """Each input's warning lines, by how a line about it starts (it names its file or folder first); every line
    must belong to one of them."""
    mine = {label: [w for w in warnings if w.startswith(start)] for label, start in starts.items()}
    assert sum(map(len, mine.values())) == len(warnings), warnings
    return mine


# A 5000-character variant makes a plot label wider than the figure: drawn anyway, with matplotlib's warning.
@pytest.mark.filterwarnings("ignore:Tight layout not applied:UserWarning")
@pytest.mark.parametrize(("field", "kind"), RUN_FIELDS, ids=[f for f, _ in RUN_FIELDS])
def test_each_bad_field_of_a_saved_run(tmp_path, capsys, runs, field, kind):
    """One report of every bad copy beside ``other`` (each warning names its file), then compare per copy."""
    good, other = runs
    bad = bad_runs(tmp_path, good, field)
    expected = {label: 0 if LEGAL[kind](value) else 1 for label, value in VALUES.items()}
    before = files_under(tmp_path)
    out = tmp_path / "report"
    formats = "md,png" if any((field, label) in DRAWN for label in VALUES) else "md"
    args = [*bad.values(), other, "-o", out, "--formats", formats, "-q", "--workers", "1"]
    status, _, warnings, errors = run_command(report_cli.main, args, capsys)
    for label, found in warnings_of(warnings, {label: f"warning: {path}: " for label, path in bad.items()}).items():
        OUTCOMES.append(Outcome("report", field, label, status, len(found), len(errors)))
        assert len(found) == expected[label], (field, label, found)
    assert (status, errors) == (0, []), (field, errors)
    assert all(p.is_relative_to(out) for p in files_under(tmp_path) - before), field
    assert_plain_markdown((out / "report.md").read_text(), ["### cpu · train_step · batch 8"])

    for label, path in bad.items():
        status, stdout, warnings, errors = run_command(compare_cli.main, [other, path], capsys)
        OUTCOMES.append(Outcome("compare", field, label, status, len(warnings), len(errors)))
        assert len(warnings) == expected[label], (field, label, warnings)
        if status == compare_cli.EXIT_BAD_INPUT:  # a refused comparison: another machine, or nothing usable
            assert len(errors) == 1 and "internal error" not in errors[0], (field, label, errors)
        else:
            assert (status, errors) == (0, []), (field, label, errors)
            assert_plain_markdown(stdout, ["## Benchmark comparison"])


def copy_traces(folder: Path, labels: list[str]) -> dict[str, Path]:
    """The other fixture trace run, and a copy of the mutated one (two cases) per label, each a run folder of its
    own; returns each label's case, whose files are mutated."""
    shutil.copytree(OTHER_TRACE_RUN, folder / OTHER_TRACE_RUN.name)
    cases = {}
    for index, label in enumerate(labels):
        run = folder / f"20261127-1244{index:02d}-2af05b"  # the mutated run's time, a second apart
        shutil.copytree(TRACE_RUN, run)
        cases[label] = run / TRACE_CASE
    return cases


def trace_file_of(case: Path, file: str) -> Path:
    return next(case.glob("*.pt.trace.json.gz")) if file == "trace" else case / file


def mutate_trace(path: Path, original: bytes, field: str, value: Any) -> None:
    """Write ``path`` as ``original`` with ``field`` set to ``value``."""
    if path.name.endswith(".gz"):
        chrome = json.loads(gzip.decompress(original))
        event = next(e for e in chrome["traceEvents"] if e.get("cat") == "cpu_op")
        put(event, field.removeprefix("ev."), value)
        path.write_bytes(gzip.compress(json.dumps(chrome).encode(), compresslevel=1))
        return
    document = json.loads(original)
    if field.startswith("op."):
        put(document["operators"][0], field.removeprefix("op."), value)
    else:
        put(document, field, value)
    path.write_text(json.dumps(document))


TRACE_VALUES = {k: v for k, v in VALUES.items() if k not in ("-Inf", "pipe and backtick", "dot-dot")}


@pytest.mark.parametrize(("file", "field", "kind"), TRACE_FIELDS, ids=[f"{f}:{p}" for f, p, _ in TRACE_FIELDS])
def test_each_bad_field_of_a_trace(tmp_path, capsys, file, field, kind):
    """One report of every bad copy of the trace run beside the other run (each warning names its case)."""
    cases = copy_traces(tmp_path / "traces", list(TRACE_VALUES))
    for label, case in cases.items():
        path = trace_file_of(case, file)
        mutate_trace(path, path.read_bytes(), field, TRACE_VALUES[label])
    before = files_under(tmp_path)
    out = tmp_path / "report"
    args = [FOREIGN_RUN, "--traces", tmp_path / "traces", "-o", out, "--formats", "md", "-q", "--workers", "1"]
    status, _, warnings, errors = run_command(report_cli.main, args, capsys)
    assert (status, errors) == (0, []), (field, errors)
    for label in (label for label in TRACE_VALUES if (field, label) in DRAWN):  # drawn too: the copy and the other
        drawn = [FOREIGN_RUN, "--traces", tmp_path / "traces" / OTHER_TRACE_RUN.name, "--traces", cases[label].parent]
        drawn += ["-o", tmp_path / "drawn", "--formats", "md,png", "-q", "--workers", "1"]
        assert run_command(report_cli.main, drawn, capsys)[0::3] == (0, []), (field, label)
    # each warning names the one case it is about: a mutated one
    for label, found in warnings_of(warnings, {label: f"warning: {case}" for label, case in cases.items()}).items():
        OUTCOMES.append(Outcome("report --traces", f"{file}:{field}", label, status, len(found), len(errors)))
        assert len(found) == (0 if LEGAL[kind](TRACE_VALUES[label]) else 1), (field, label, found)
    assert all(p.is_relative_to(out) or p.is_relative_to(tmp_path / "drawn") for p in files_under(tmp_path) - before)
    others = ["batch 2", "cpu-channels_last-fp32-eager · forward_inference"]  # the other traces
    assert_plain_markdown((out / "report.md").read_text(), ["## Traces", *others])
    assert (out / "report.md").read_text().count("\n### cpu-") >= 3


def test_zz_the_summary_of_what_each_command_did():
    """Runs last: prints how the commands ended over every input (``pytest -s`` shows it)."""
    if not OUTCOMES:
        pytest.skip("run with the field tests to summarize them")
    print(f"\n{len(OUTCOMES)} command runs over mutated inputs\n" + summary())
    assert all(o.status in (0, 2) for o in OUTCOMES)
