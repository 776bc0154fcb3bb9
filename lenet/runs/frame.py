"""Runs -> one tidy pandas DataFrame: the only place a :class:`~lenet.runs.model.Run` is flattened.

One row per benchmark per run. Columns:

* run: ``source`` (file, or ``postgresql:<id>``), ``run`` (file name without .json), ``run_time``
  (UTC), ``pytest_benchmark_version``, ``commit``, ``commit_time``, ``branch``, ``dirty``;
* machine: ``machine`` (the fingerprint), ``fingerprint_fields`` (JSON text of what it hashes),
  ``machine_label`` (readable), ``cpu_model``, ``gpu_name``, ``torch_version``, ``torch_threads``;
* benchmark: ``name``, ``fullname``, ``group``, ``param``, ``params`` (JSON text), ``label`` (the
  variant id, or the benchmark name for runs without one);
* lenet-bench's ``extra_info`` fields (``variant``, ``device``, ``phase``, ``batch_size``, ...), and any
  other ``extra_info`` key a run carries, each as its own column; lists (stability flags, count
  repeats) stay tuples;
* every statistic pytest-benchmark saved (``min``, ``median``, ``iqr``, ``q1``, ..., in seconds) and
  ``data``: the per-round times as a tuple, or None.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from lenet.runs.model import STAT_FIELDS, Result, Run

RUN_COLUMNS = (
    "source",
    "run",
    "run_time",
    "pytest_benchmark_version",
    "commit",
    "commit_time",
    "branch",
    "dirty",
    "machine",
    "fingerprint_fields",
    "machine_label",
    "cpu_model",
    "gpu_name",
    "torch_version",
    "torch_threads",
)
BENCH_COLUMNS = ("name", "fullname", "group", "param", "params", "label")
VARIANT_COLUMNS = ("variant", "device", "memory_format", "precision", "compile", "phase", "batch_size", "optimizer")


def run_columns(run: Run) -> dict[str, Any]:
    """The columns every row of a run shares: where it came from, its time, commit and machine."""
    machine = run.machine
    return {
        "source": run.source,
        "run": run.name,
        "run_time": run.time,
        "pytest_benchmark_version": run.pytest_benchmark_version,
        "commit": run.commit.id,
        "commit_time": run.commit.time,
        "branch": run.commit.branch,
        "dirty": run.commit.dirty,
        "machine": machine.fingerprint,
        "fingerprint_fields": json.dumps(machine.fields, sort_keys=True, default=str),
        "machine_label": machine.label,
        "cpu_model": machine.cpu_model,
        "gpu_name": machine.gpu_name,
        "torch_version": machine.torch_version,
        "torch_threads": machine.torch_threads,
    }


def result_row(result: Result, common: dict[str, Any]) -> dict[str, Any]:
    row = dict(common)
    row.update(name=result.name, fullname=result.fullname, group=result.group, param=result.param, params=result.params)
    for key, value in result.info().items():
        if key not in row:  # a run's own fields win over an extra_info key of the same name
            row[key] = tuple(value) if isinstance(value, list) else value
    row["label"] = result.label
    for stat in STAT_FIELDS:
        row[stat] = result.stats.get(stat)
    row["data"] = result.stats.data
    return row


def to_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per result of each run (the columns the module docstring lists)."""
    return frame_from_rows(result_row(result, run_columns(run)) for run in runs for result in run.results)


def frame_from_rows(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows of the frame's columns (any subset: the rest are None) as the frame readers expect it.

    Built column by column, one row dict at a time: a report over 50,000 benchmarks never holds
    50,000 row dicts at once (pandas' list-of-dicts constructor would), only one list per column.
    Columns come in the order of their first appearance, as pandas orders a list of dicts.
    """
    columns: dict[str, list[Any]] = {}
    count = 0
    for row in rows:
        if row.keys() == columns.keys():  # the common case, compared in C: every column gets a value
            for key, value in row.items():
                columns[key].append(value)
        else:
            for key, value in row.items():
                columns.setdefault(key, [None] * count).append(value)
            for column in columns.values():
                if len(column) <= count:
                    column.append(None)
        count += 1
    index = pd.RangeIndex(count)
    # Each list becomes its column and is dropped at once, so lists and columns never all coexist.
    frame = pd.DataFrame(
        {key: pd.Series(columns.pop(key), index=index) for key in list(columns)}, index=index, copy=False
    )
    for column in (*RUN_COLUMNS, *BENCH_COLUMNS, *VARIANT_COLUMNS, *STAT_FIELDS, "data"):
        if column not in frame.columns:
            frame[column] = None
    frame["run_time"] = pd.to_datetime(frame["run_time"], utc=True, errors="coerce", format="ISO8601")
    frame["batch_size"] = pd.to_numeric(frame["batch_size"], errors="coerce").astype("Int64")
    return frame
