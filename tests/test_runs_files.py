"""Loading saved runs: ours, other projects' (pytest-benchmark 3.x and 4.x), and bad files."""

import hashlib
import json
from pathlib import Path

import pytest

from lenet.runs.files import NotARunError, find_run_files, read_run, read_runs

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = FIXTURES / "runs"
BAD = FIXTURES / "bad"


def test_every_fixture_run_loads_into_one_tidy_frame():
    loaded = read_runs([RUNS])
    assert loaded.problems == []
    assert loaded.files_read == 5
    frame = loaded.frame
    assert len(frame) == 30 + 30 + 12 + 3 + 3  # two lenet CPU runs, the H200 subset, two foreign runs
    assert frame["machine"].nunique() == 3
    ours = frame[frame["variant"].notna()]
    assert set(ours["phase"]) == {"forward_inference", "forward_train", "backward", "optimizer_step", "train_step"}
    assert ours["batch_size"].dropna().astype(int).isin([2, 8, 64]).all()
    assert (ours["samples_per_s"] > 0).all()
    assert frame["run_time"].notna().all()


def test_runs_from_other_projects_keep_their_names_params_and_stats():
    frame = read_runs([RUNS / "other-pb3", RUNS / "other-pb4"]).frame
    assert sorted(set(frame["pytest_benchmark_version"])) == ["3.4.1", "4.0.0"]
    assert set(frame["label"]) == {"test_sort", "test_join[10]", "test_join[1000]"}
    assert frame["variant"].isna().all() and frame["phase"].isna().all()
    join = frame[(frame["name"] == "test_join[1000]") & (frame["pytest_benchmark_version"] == "3.4.1")].iloc[0]
    assert join["params"] == '{"n": 1000}'
    assert join["items"] == 1000  # their own extra_info becomes a column
    assert join["median"] > 0 and join["rounds"] >= 7
    v3 = frame[frame["pytest_benchmark_version"] == "3.4.1"]
    v4 = frame[frame["pytest_benchmark_version"] == "4.0.0"]
    assert v3["data"].map(lambda d: isinstance(d, tuple) and len(d) >= 7).all()
    assert v4["data"].isna().all()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.json", "empty.json: is empty; expected a pytest-benchmark JSON file"),
        ("truncated.json", "truncated.json: is not valid JSON (Unterminated string"),
        ("not_a_run.json", "not_a_run.json: is JSON but not a pytest-benchmark saved run"),
        ("not_utf8.json", "not_utf8.json: not UTF-8 text"),
    ],
)
def test_each_bad_file_gets_one_line_naming_it(name, message):
    with pytest.raises(NotARunError) as info:
        read_run(BAD / name)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_files_do_not_stop_the_good_ones():
    loaded = read_runs([RUNS / "lenet-cpu", BAD, FIXTURES / "missing-folder"])
    assert loaded.files_read == 2
    assert len(loaded.problems) == 5
    assert any("missing-folder: no such file or folder" in p for p in loaded.problems)
    assert len(loaded.frame) == 60


def test_loading_never_modifies_the_files():
    files = find_run_files([RUNS, BAD])
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    stamps = {p: p.stat().st_mtime_ns for p in files}
    read_runs([RUNS, BAD])
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_traces_are_not_taken_for_runs(tmp_path):
    (tmp_path / "traces" / "run1").mkdir(parents=True)
    (tmp_path / "traces" / "run1" / "w.123.pt.trace.json").write_text("{}")
    (tmp_path / "x.pt.trace.json").write_text("{}")
    assert find_run_files([tmp_path]) == []


def test_a_benchmark_without_statistics_is_skipped_with_a_line(tmp_path):
    text = (RUNS / "other-pb4").rglob("*.json").__next__().read_text()
    broken = tmp_path / "run.json"
    broken.write_text(text.replace('"stats": {', '"nostats": {', 1))
    loaded = read_runs([broken])
    assert len(loaded.frame) == 2
    assert loaded.problems == [f"{broken}: benchmark 'test_sort' has no statistics; skipped"]


def test_one_file_named_several_ways_is_read_once(monkeypatch):
    [path] = [p for p in (RUNS / "other-pb4").rglob("*.json")]
    monkeypatch.chdir(RUNS)
    relative = path.relative_to(RUNS)
    detour = Path(relative.parts[0]) / ".." / relative.parts[0] / Path(*relative.parts[1:])
    loaded = read_runs([relative, detour, path, path.parent])
    assert loaded.files_read == 1 and loaded.problems == [] and loaded.notes == []
    assert loaded.frame["source"].nunique() == 1 and len(loaded.frame) == 3


def test_a_copy_of_a_run_is_one_process(tmp_path):
    from lenet.analysis.sides import load_side
    from lenet.analysis.summary import summarize

    [original, other] = sorted((RUNS / "lenet-cpu").rglob("*.json"))
    copy = tmp_path / "baselines" / "renamed.json"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    loaded = read_runs([original, copy])
    assert loaded.files_read == 1 and len(loaded.frame) == 30
    assert loaded.notes == [f"{copy}: a copy of {original} (same time, machine, commit and results); read once"]
    assert set(summarize(loaded.frame)["runs"]) == {1}  # "CI from runs" needs two processes, not one file twice
    side, lines = load_side([original, copy, other], "candidate")
    assert side.runs == 2 and len(lines) == 1
    run = json.loads(original.read_text())
    run["benchmarks"][0]["stats"]["median"] *= 1.01  # the same time, machine and commit, other results
    copy.write_text(json.dumps(run))
    assert read_runs([original, copy]).files_read == 2


def cpu_run() -> tuple[Path, dict]:
    path = sorted((RUNS / "lenet-cpu").rglob("*.json"))[0]
    return path, json.loads(path.read_text())


def test_bad_values_make_one_line_per_file_and_the_rest_loads(tmp_path):
    _, run = cpu_run()
    bad = {
        0: ("median", float("nan")),
        1: ("median", float("inf")),
        2: ("median", 0),
        3: ("median", -1e-3),
        4: ("iqr", "wide"),
        5: ("rounds", "many"),
        6: ("data", ["a", "b"]),
        7: ("q1", float("inf")),
    }
    for index, (stat, value) in bad.items():
        run["benchmarks"][index]["stats"][stat] = value
    run["benchmarks"][8]["extra_info"]["variant"] = {"a": 1}
    run["benchmarks"][9]["extra_info"]["variant"] = ["list"]
    run["benchmarks"][10]["name"] = {"not": "text"}
    run["benchmarks"][11]["extra_info"]["batch_size"] = "big"
    run["benchmarks"][12]["group"] = ["g"]
    run["machine_info"]["fingerprint"] = 1234
    run["datetime"] = 5
    path = tmp_path / "bad-values.json"
    path.write_text(json.dumps(run))
    loaded = read_runs([path, RUNS / "other-pb4"])
    [line] = loaded.problems
    assert line.startswith(f"{path}: ") and "\n" not in line
    for needle in (
        "4 benchmarks: stats.median is not a positive time (first nan in",
        "stats.iqr is not a time ('wide')",
        "stats.rounds is not a count ('many')",
        "stats.data is not a list of positive times",
        "stats.q1 is not a time (inf)",
        "2 benchmarks: extra_info.variant is not text (first {'a': 1} in",
        "benchmark '#10': name is missing or not text",
        "extra_info.batch_size is not an integer ('big'); skipped",
        "group is not text",
        "machine_info.fingerprint is not a name (1-100 letters, digits, '.', '_', '+' or '-', starting with",
        "datetime is not an ISO time (5); the run's time is unknown",
    ):
        assert needle in line, needle
    frame = loaded.frame[loaded.frame["source"] == str(path)]
    assert len(frame) == 30 - 4 - 1 - 1  # the bad medians, the nameless and the unplaceable benchmark
    assert frame["machine"].map(type).eq(str).all() and frame["run_time"].isna().all()
    assert frame[frame["name"] == run["benchmarks"][8]["name"]]["label"].tolist() == [run["benchmarks"][8]["name"]]
    assert frame["median"].gt(0).all() and frame["data"].map(lambda d: d is None or len(d) == 5).all()


def test_a_run_without_statistics_is_one_line_not_one_per_benchmark(tmp_path):
    _, run = cpu_run()
    for bench in run["benchmarks"]:
        del bench["stats"]
    path = tmp_path / "no-stats.json"
    path.write_text(json.dumps(run))
    [line] = read_runs([path]).problems
    assert line.startswith(f"{path}: 30 benchmarks have no statistics ('test_")
    assert line.endswith(" and 27 more); skipped")
