"""The runs layer: one typed Run from files and PostgreSQL alike, flattened in one place, importing nothing above it."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from lenet.runs.files import read_run, read_runs
from lenet.runs.model import Run
from lenet.runs.postgres.connection import BadURLError
from lenet.runs.selection import QueryError, RunFilter
from lenet.runs.source import DatabaseSource, FileSource, open_source

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path("tests/fixtures")  # relative to the checkout: the golden frames name sources this way
GOLDEN = REPO / "tests" / "fixtures" / "golden" / "frames"
FRAME_SETS = {
    "lenet-cpu": [FIXTURES / "runs" / "lenet-cpu"],
    "lenet-h200": [FIXTURES / "runs" / "lenet-h200"],
    "other-pb3": [FIXTURES / "runs" / "other-pb3"],
    "other-pb4": [FIXTURES / "runs" / "other-pb4"],
    "metrics": [FIXTURES / "metrics"],
    "all-runs": [FIXTURES / "runs"],
}


def _plain(value: object) -> object:
    """A frame cell as the golden files hold it: times as ISO text, tuples as lists, missing as None."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


@pytest.mark.parametrize("name", sorted(FRAME_SETS))
def test_every_fixture_loads_to_the_table_it_loaded_to_before_the_runs_layer(name, monkeypatch):
    # The golden files were written by the loader this layer replaced (lists were JSON text there; they
    # are tuples now, compared as lists): the same rows, values, problems and file counts. A record field
    # added since is a new column, empty for these older runs.
    monkeypatch.chdir(REPO)
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    loaded = read_runs(FRAME_SETS[name])
    frame = loaded.frame
    columns = sorted(golden["rows"][0])
    assert set(columns) <= set(frame.columns)
    rows = [{c: _plain(row[c]) for c in columns} for _, row in frame.iterrows()]
    assert (loaded.problems, loaded.files_read) == (golden["problems"], golden["files_read"])
    assert rows == golden["rows"]
    assert frame[sorted(set(frame.columns) - set(columns))].isna().all().all()


def test_a_run_is_typed_once_and_its_median_derives_samples_per_second():
    run = read_run(
        REPO / "tests/fixtures/runs/lenet-h200/Linux-CPython-3.12-64bit/0001_5a400a3_20261127_eager-subset.json"
    )
    assert isinstance(run, Run) and run.machine.gpu_name and run.commit.id.startswith("5a400a3")
    result = run.results[0]
    assert result.record is not None and result.stats.median > 0
    assert result.samples_per_s == pytest.approx(result.record.batch_size / result.stats.median)
    assert result.label == result.record.variant


def test_a_run_names_its_flagged_benchmarks(tmp_path):
    source = next((REPO / "tests/fixtures/runs/lenet-cpu").rglob("*.json"))
    document = json.loads(source.read_text())
    document["benchmarks"][0]["extra_info"]["stability_flags"] = ["busy"]
    document["benchmarks"][1]["extra_info"]["stability_flags"] = []
    path = tmp_path / "run.json"
    path.write_text(json.dumps(document))
    assert read_run(path).flagged() == [f"{document['benchmarks'][0]['name']} (busy)"]
    assert read_run(source).flagged() == []


def test_open_source_takes_a_folder_a_file_or_one_url(tmp_path):
    folder = REPO / "tests/fixtures/runs/other-pb3"
    file = next(folder.rglob("*.json"))
    assert isinstance(open_source([str(folder)]), FileSource)
    assert open_source([str(file)]).runs().files_read == 1
    url = "postgresql://bench:S3cret@127.0.0.1:1/lenet"
    source = open_source([url])
    assert isinstance(source, DatabaseSource) and "S3cret" not in source.describe()
    assert open_source([""], environ={"LENET_DB_URL": url}) == source  # --db alone: the environment twin
    with pytest.raises(BadURLError, match="no database named"):
        open_source([""], environ={})
    with pytest.raises(QueryError, match="not both"):
        open_source([url, str(folder)])


def test_a_file_source_applies_a_filter_as_the_database_does():
    source = open_source([str(REPO / "tests/fixtures/runs/lenet-cpu")])
    every = source.runs()
    some = source.runs(RunFilter(phases=["train_step"], batch_sizes=[8]))
    assert 0 < len(some.frame) < len(every.frame)
    assert set(some.frame["phase"]) == {"train_step"} and set(some.frame["batch_size"]) == {8}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    found |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return found


def test_the_runs_layer_imports_neither_analysis_nor_the_commands():
    for path in (REPO / "lenet" / "runs").rglob("*.py"):
        above = {name for name in _imports(path) if name.startswith(("lenet.analysis", "lenet.cli"))}
        assert not above, f"{path.relative_to(REPO)} imports {above}"


def test_no_function_in_the_runs_layer_is_over_40_lines():
    for path in (REPO / "lenet" / "runs").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 40, f"{path.relative_to(REPO)}:{node.lineno} {node.name} is {length} lines"
