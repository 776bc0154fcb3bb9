"""The one table of what each field of a saved run must be, applied once, where a run is read.

Files and PostgreSQL rows both come through here (:func:`check_run`, :func:`check_result`),
so a run reads the same wherever it lives. A bad value is dropped or its benchmark skipped,
never the whole run: everything wrong in one run makes one line (:class:`Issues`) naming the
run, the field, the value and what was done.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lenet.fingerprint import run_fingerprint
from lenet.paths import SAFE_NAME_RULE, is_safe_name
from lenet.roundtrip import is_time_in_range
from lenet.runs.model import OTHER_STATS, Commit, Machine, Result, Run, Stats
from lenet.runs.record import Record, is_record, short
from lenet.terminal import printable

TIME_STATS = ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr", "total", "stddev", "iqr", "ops")
COUNT_STATS = ("rounds", "iterations", "iqr_outliers", "stddev_outliers")
# Where a lenet-bench row goes in the tables (and what its plot files are named by): a bad one skips the benchmark.
PLACING_FIELDS = ("device", "phase")
TEXT_FIELDS = ("variant", "memory_format", "precision", "compile", "optimizer")
NUMBER_FIELDS = ("samples_per_s", "instructions", "instructions_spread")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_time(value: object) -> bool:
    return is_number(value) and value > 0  # type: ignore[operator]


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_text(value: object) -> bool:
    return isinstance(value, str)


@dataclass
class Issues:
    """What was wrong in one run, grouped so that the whole run makes one line however much is wrong."""

    source: str
    found: dict[tuple[str, str], list[tuple[str | None, object]]] = field(default_factory=dict)

    def add(self, what: str, value: object, action: str, benchmark: str | None = None) -> None:
        """``what``: the field and what it should be, e.g. ``stats.median is not a positive time``."""
        self.found.setdefault((what, action), []).append((benchmark, value))

    def line(self) -> str | None:
        parts = [self._part(what, action, cases) for (what, action), cases in self.found.items()]
        return f"{printable(self.source)}: {'; '.join(parts)}" if parts else None

    @staticmethod
    def _part(what: str, action: str, cases: list[tuple[str | None, object]]) -> str:
        benchmark, value = cases[0]
        if what == "no statistics":
            names = ", ".join(short(b, 60) for b, _ in cases[:3]) + (f" and {len(cases) - 3} more" * (len(cases) > 3))
            if len(cases) == 1:
                return f"benchmark {names} has no statistics; {action}"
            return f"{len(cases)} benchmarks have no statistics ({names}); {action}"
        if benchmark is None:
            return f"{what} ({short(value)}); {action}"
        if len(cases) == 1:
            return f"benchmark {short(benchmark, 60)}: {what} ({short(value)}); {action}"
        return f"{len(cases)} benchmarks: {what} (first {short(value)} in {short(benchmark, 60)}); {action}"


def text_or_none(info: Mapping[str, Any], key: str, where: str, issues: Issues) -> str | None:
    value = info.get(key)
    if value is None or is_text(value):
        return value
    issues.add(f"{where}.{key} is not text", value, "ignored")
    return None


def object_or_empty(value: Any, key: str, issues: Issues) -> Mapping[str, Any]:
    if value is not None and not isinstance(value, dict):
        issues.add(f"{key} is not an object", value, "ignored")
    return value if isinstance(value, dict) else {}


def check_machine(machine_info: Mapping[str, Any], issues: Issues) -> Machine:
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
    cpu_model = (
        text_or_none(machine_info, "cpu_model", "machine_info", issues)
        or (cpu.get("brand_raw") if is_text(cpu.get("brand_raw")) else None)
        or (machine_info.get("processor") if is_text(machine_info.get("processor")) else None)
        or "unknown CPU"
    )
    count = machine_info.get("cpu_count") or cpu.get("count")
    gpu = text_or_none(machine_info, "gpu_name", "machine_info", issues)
    torch_version = text_or_none(machine_info, "torch_version", "machine_info", issues)
    threads = machine_info.get("torch_threads") if is_count(machine_info.get("torch_threads")) else None
    parts = [gpu] if gpu else []
    parts.append(f"{cpu_model} ({count} CPUs)" if is_count(count) and count else cpu_model)
    parts.append(f"torch {torch_version}" if torch_version else "")
    parts.append(f"{threads} threads" if threads else "")
    parts.append("" if torch_version else f"Python {machine_info.get('python_version', '?')}")
    fingerprint, fields, refused = run_fingerprint(dict(machine_info))
    if refused:
        what = f"machine_info.fingerprint is not a name ({SAFE_NAME_RULE})"
        issues.add(what, machine_info.get("fingerprint"), f"using {fingerprint}, the hash of its fingerprint fields")
    label = ", ".join(part for part in parts if part)
    return Machine(fingerprint, fields, label, cpu_model, gpu, torch_version, threads)


def check_commit(commit_info: Mapping[str, Any], issues: Issues) -> Commit:
    return Commit(
        id=text_or_none(commit_info, "id", "commit_info", issues) or "unknown",
        time=text_or_none(commit_info, "time", "commit_info", issues),
        branch=text_or_none(commit_info, "branch", "commit_info", issues),
        dirty=bool(commit_info.get("dirty", False)),
    )


def is_iso_time(text: str) -> bool:
    return is_time_in_range(text) and not pd.isna(pd.to_datetime(text, errors="coerce", format="ISO8601"))


def check_time(when: Any, issues: Issues) -> str | None:
    if when is not None and (not is_text(when) or not is_iso_time(when)):
        issues.add("datetime is not an ISO time", when, "the run's time is unknown")
        return None
    return when


def check_median(stats: Any, name: str, issues: Issues) -> bool:
    """Whether a benchmark has a positive median (a benchmark without one is skipped, with an issue)."""
    if not isinstance(stats, Mapping) or "median" not in stats:
        issues.add("no statistics", None, "skipped", name)
        return False
    if not is_time(stats["median"]):
        issues.add("stats.median is not a positive time", stats["median"], "skipped", name)
        return False
    return True


def check_stats(stats: Mapping[str, Any], name: str, issues: Issues) -> Stats:
    """The statistics of a benchmark whose median passed :func:`check_median`; bad others are dropped."""
    others = []
    for stat in OTHER_STATS:
        value = stats.get(stat)
        if value is not None and stat in TIME_STATS and not (is_number(value) and value >= 0):
            issues.add(f"stats.{stat} is not a time", value, "ignored", name)
            value = None
        elif value is not None and stat in COUNT_STATS and not is_count(value):
            issues.add(f"stats.{stat} is not a count", value, "ignored", name)
            value = None
        others.append(value)
    return Stats(float(stats["median"]), tuple(others), check_data(stats.get("data"), name, issues))


def check_data(data: Any, name: str, issues: Issues) -> tuple[float, ...] | None:
    # Thousands of rounds a benchmark: types checked in C (map, set), then the range: a NaN or an infinity
    # anywhere makes the sum one, and min() > 0 leaves zero and negative times out.
    numbers = isinstance(data, list | tuple) and bool(data) and set(map(type, data)) <= {float, int}
    if numbers and min(data) > 0 and math.isfinite(sum(data)):
        return tuple(data)
    if data is not None and data != [] and data != ():
        issues.add("stats.data is not a list of positive times", data, "ignored", name)
    return None


def check_record(extra: Mapping[str, Any], name: str, issues: Issues) -> tuple[Record | None, frozenset[str]]:
    """A lenet-bench record read through :meth:`Record.read`; each dropped key is one issue."""
    record, problems = Record.read(extra)
    for problem in problems:
        issues.add(
            f"extra_info.{problem.key} is not {problem.expected}",
            problem.value,
            "skipped" if record is None else "ignored",
            name,
        )
    # What was dropped, or absent where the record needs a value ("?"), reads as absent.
    absent = {problem.key for problem in problems} | {key for key in Record.REQUIRED if extra.get(key) is None}
    for key in NUMBER_FIELDS:  # a rate or a count of instructions below zero is no measurement
        value = extra.get(key) if record is not None and key not in absent else None
        if is_number(value) and value < 0:
            issues.add(f"extra_info.{key} is not a number", value, "ignored", name)
            absent.add(key)
    return record, frozenset(key for key in absent if key is not None)


def check_foreign(extra: Mapping[str, Any], name: str, issues: Issues) -> dict[str, Any]:
    """``extra_info`` of a run made without lenet-bench: the fields the tables use must have their kinds."""
    checked = {}
    for key, value in extra.items():
        if key in TEXT_FIELDS and value is not None and not is_text(value):
            issues.add(f"extra_info.{key} is not text", value, "ignored", name)
            value = None
        elif key in NUMBER_FIELDS and value is not None and not (is_number(value) and value >= 0):
            issues.add(f"extra_info.{key} is not a number", value, "ignored", name)
            value = None
        checked[key] = tuple(value) if isinstance(value, list) else value
    return checked


def check_placing(info: Mapping[str, Any], name: str, issues: Issues) -> bool:
    """Whether a row can be placed in the tables (device, phase, batch size), with an issue when not."""
    for key in PLACING_FIELDS:
        if info.get(key) is not None and not is_safe_name(info[key]):
            issues.add(f"extra_info.{key} is not a name ({SAFE_NAME_RULE})", info[key], "skipped", name)
            return False
    batch = info.get("batch_size")
    if batch is not None and not (is_count(batch) and 0 < batch < 2**31):  # the database's integer column
        issues.add("extra_info.batch_size is not a positive integer", batch, "skipped", name)
        return False
    if info.get("phase") is not None and (info.get("device") is None or batch is None):
        # A lenet-bench row is placed by device, phase and batch size: without one it would vanish from the tables.
        issues.add("extra_info has a phase but no device or batch_size", info.get("phase"), "skipped", name)
        return False
    return True


def check_result(entry: Mapping[str, Any], stats: Any, issues: Issues, position: int) -> Result | None:
    """One benchmark (``entry``: its name, fullname, group, param, params, extra_info), or None with an issue."""
    name = entry.get("name")
    if not is_text(name) or not name:
        issues.add("name is missing or not text", name, "skipped", f"#{position}")
        return None
    if not check_median(stats, name, issues):
        return None
    extra = object_or_none(entry.get("extra_info"), name, issues)
    record, absent = None, frozenset[str]()
    if is_record(extra) and extra.get("phase") is not None:  # ours, placed: read through the record
        record, absent = check_record(extra, name, issues)
        if record is None:
            return None
    placed = extra if record is None else _placing(record, absent)
    if not check_placing(placed, name, issues):
        return None
    names = _names(entry, name, issues)
    foreign = check_foreign(extra, name, issues) if record is None else {}
    return Result(name, check_stats(stats, name, issues), record, foreign, absent, **names)


def _placing(record: Record, absent: frozenset[str]) -> dict[str, Any]:
    """The record's fields that place its row, as the frame will read them (absent ones as None)."""
    fields = {"device": record.device, "phase": record.phase, "batch_size": record.batch_size}
    return {key: None if key in absent else value for key, value in fields.items()}


def object_or_none(extra: Any, name: str, issues: Issues) -> Mapping[str, Any]:
    if extra is not None and not isinstance(extra, dict):
        issues.add("extra_info is not an object", extra, "ignored", name)
    return extra if isinstance(extra, dict) else {}


def _names(entry: Mapping[str, Any], name: str, issues: Issues) -> dict[str, Any]:
    group = entry.get("group")
    if group is not None and not is_text(group):
        issues.add("group is not text", group, "ignored", name)
        group = None
    params = entry.get("params")
    return {
        "fullname": entry.get("fullname") if is_text(entry.get("fullname")) else None,
        "group": group,
        "param": None if entry.get("param") is None else str(entry.get("param")),
        "params": json.dumps(params, sort_keys=True, default=str) if params else None,
    }


def check_run(
    head: Mapping[str, Any],
    entries: Iterable[tuple[Any, Any]],
    source: str,
    name: str,
    shown_as: str | None = None,
    document: Mapping[str, Any] | None = None,
) -> Run:
    """A checked :class:`Run` from its head (``machine_info``, ``commit_info``, ``datetime``, ``version``) and
    its benchmarks, each an (entry, stats) pair: a saved file's ``benchmarks`` list, or database rows.
    ``shown_as`` names the run in its problem line (default: ``source``)."""
    issues = Issues(shown_as or source)
    machine_info, commit_info = (object_or_empty(head.get(key), key, issues) for key in ("machine_info", "commit_info"))
    when = check_time(head.get("datetime"), issues)
    version = text_or_none(head, "version", "run", issues)
    commit = check_commit(commit_info, issues)
    machine = check_machine(machine_info, issues)
    results = [
        result
        for position, (entry, stats) in enumerate(entries)
        if (result := _entry_result(entry, stats, position, issues)) is not None
    ]
    line = issues.line()
    return Run(source, name, when, machine, commit, tuple(results), version, (line,) if line else (), document)


def check_document(document: Mapping[str, Any], source: str, name: str, keep_document: bool = True) -> Run:
    """A parsed pytest-benchmark file (a dict with a ``benchmarks`` list) as a checked :class:`Run`."""
    entries = ((entry, entry.get("stats") if isinstance(entry, dict) else None) for entry in document["benchmarks"])
    return check_run(document, entries, source, name, document=document if keep_document else None)


def _entry_result(entry: Any, stats: Any, position: int, issues: Issues) -> Result | None:
    if not isinstance(entry, dict):
        issues.add("a benchmark entry is not an object", entry, "skipped", f"#{position}")
        return None
    return check_result(entry, stats, issues, position)
