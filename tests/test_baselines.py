"""Baselines in-process: promotion is all or nothing, and a value from a file never becomes a path."""

import json
import os
import stat
from pathlib import Path

import pytest

from lenet.analysis.compare import CompareError
from lenet.analysis.noise import read_calibration, read_count_noise
from lenet.baselines import BaselineError, calibrate, describe, promote
from lenet.cli.baseline import main

RUNS = Path(__file__).parent / "fixtures" / "runs"


def cpu_runs():
    return sorted((RUNS / "lenet-cpu").rglob("*.json"))


def with_fingerprint(tmp_path, name, fingerprint):
    run = json.loads(cpu_runs()[0].read_text())
    run["machine_info"]["fingerprint"] = fingerprint
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(run))
    return path


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("fingerprint", ["../../../../escaped/PWNED", "/abs/PWNED", "a/b", "..", "x" * 200, "a\nb"])
def test_a_fingerprint_that_is_no_folder_name_is_refused_and_nothing_is_written(tmp_path, fingerprint):
    run = with_fingerprint(tmp_path, "0001_run.json", fingerprint)
    root = tmp_path / "deep" / "er" / "root"
    with pytest.raises(BaselineError, match="machine fingerprint") as raised:
        promote([run], root)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()
    assert not list(tmp_path.glob("**/PWNED*"))


def test_a_bad_run_among_good_ones_copies_nothing(tmp_path):
    good_a, good_b = cpu_runs()
    truncated = tmp_path / "in" / "0003_truncated.json"
    truncated.parent.mkdir()
    truncated.write_text(good_a.read_text()[:500])
    root = tmp_path / "baselines"
    with pytest.raises(BaselineError, match=r"0003_truncated\.json"):
        promote([good_a, truncated, good_b], root)
    assert not root.exists() or files_under(root) == []


def test_a_name_conflict_copies_nothing_and_noise_counts_what_is_on_disk(tmp_path):
    root = tmp_path / "baselines"
    promote([cpu_runs()[0]], root)
    [folder] = list(root.iterdir())
    before = {p: p.read_bytes() for p in folder.iterdir()}
    clash = tmp_path / "clash" / cpu_runs()[0].name
    clash.parent.mkdir()
    clash.write_text(cpu_runs()[1].read_text())
    with pytest.raises(BaselineError, match="a different run of this name is already in the baseline"):
        promote([cpu_runs()[1], clash], root)
    assert {p: p.read_bytes() for p in folder.iterdir()} == before  # the good run was not copied either
    copied = promote([cpu_runs()[1]], root)
    noise = json.loads((folder / "noise.json").read_text())
    assert len(copied) == 1 and noise["runs"] == len(list(folder.glob("0*.json"))) == 2


def test_noise_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        promote([cpu_runs()[0]], tmp_path / "b")
    finally:
        os.umask(old)
    [noise] = (tmp_path / "b").glob("*/noise.json")
    assert stat.S_IMODE(noise.stat().st_mode) == 0o644


def test_command_line_errors_are_one_line_and_exit_2(tmp_path, capsys):
    root_file = tmp_path / "root"
    root_file.write_text("")
    assert main(["--root", str(root_file), "promote", str(cpu_runs()[0])]) == 2
    assert main(["--root", str(root_file), "list"]) == 2
    assert main(["--root", str(tmp_path / "b"), "promote", str(tmp_path / "missing.json")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "is a file; expected a folder" in errors[0] and "does not exist" in errors[2]


def test_list_survives_a_corrupt_noise_file(tmp_path):
    root = tmp_path / "b"
    promote([cpu_runs()[0]], root)
    [noise] = root.glob("*/noise.json")
    noise.write_text("{not json")
    lines, warnings = describe(root)
    assert len(lines) == 1 and "1 runs  0 benchmarks" in lines[0]
    assert len(warnings) == 1 and "noise.json: unreadable" in warnings[0]


def test_calibration_counts_in_its_first_processes_and_noise_keeps_their_spread(tmp_path):
    counted = []

    def suite(output, count):
        counted.append(count)
        run = json.loads(cpu_runs()[0].read_text())
        run["datetime"] = f"2026-11-28T10:0{len(counted)}:00+00:00"  # a separate process, not a copy
        for index, bench in enumerate(run["benchmarks"]):
            if count:  # what --instructions adds: one count per call, a little apart between processes
                bench["extra_info"]["instructions"] = 1_000_000.0 * (index + 1) + 100.0 * len(counted)
        output.write_text(json.dumps(run))
        return 0

    copied = calibrate(4, tmp_path / "root", suite, "abc1234", count_processes=3)
    assert counted == [True, True, True, False] and len(copied) == 4
    [folder] = {path.parent for path in copied}
    counts = read_count_noise(folder)
    first = sorted(counts)[0]
    assert len(counts[first]) == 3  # the counted processes only
    noise = json.loads((folder / "noise.json").read_text())["benchmarks"][first]
    assert noise["instructions_range"] == pytest.approx((max(counts[first]) - min(counts[first])) / counts[first][1])
    assert read_count_noise(tmp_path) is None  # no noise file: no calibration


def test_a_noise_file_from_before_fingerprint_fields_still_calibrates_and_a_bad_one_is_one_error(tmp_path):
    [folder] = {path.parent for path in promote(cpu_runs(), tmp_path / "root")}
    noise = folder / "noise.json"
    document = json.loads(noise.read_text())
    assert read_calibration(folder).fingerprint_fields == document["fingerprint_fields"] != {}
    del document["fingerprint_fields"]  # as older versions wrote it
    noise.write_text(json.dumps(document))
    assert read_calibration(folder).fingerprint_fields == {} and read_calibration(folder).times
    noise.write_text(json.dumps({**document, "fingerprint_fields": ["cpu_model"]}))
    with pytest.raises(CompareError, match=r"noise.json: not a noise file written by scripts/baseline.py"):
        read_calibration(folder)
    noise.write_text("[1, 2]")
    with pytest.raises(CompareError, match=r"noise.json: not a noise file .*\(not a JSON object\)"):
        read_calibration(folder)
