"""Two environments on one machine: the fingerprint split, compare across torch versions, ab.py across interpreters."""

import json
import os
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from venvs import layered_python

from lenet.ab import SIDES
from lenet.analysis.compare import EXIT_BAD_INPUT, EXIT_OK, EXIT_REGRESSION, GateOptions, Side, gate
from lenet.baselines import promote
from lenet.cli import ab as ab_cli
from lenet.cli import baseline as baseline_cli
from lenet.cli import compare as compare_cli
from lenet.fingerprint import describe_software, fingerprint, run_fingerprint, split_differences
from lenet.instructions import compile_for_valgrind, unavailable_reason

REPO = Path(__file__).resolve().parents[1]
TORCH_RUNS = Path(__file__).parent / "fixtures" / "torch-versions"
MACHINE = {"cpu_model": "Xeon", "cpu_count": 2, "torch_threads": 1}


def side(fields: dict, fingerprint_: str) -> Side:
    samples = {"b": [1.0, 1.001, 0.999, 1.0005, 0.9995, 1.0] * 2}
    return Side(samples, fingerprint_, fields, ("5.3.1",), 12)


def test_software_differences_are_named_and_machine_differences_refused():
    old = {**MACHINE, "torch_version": "2.12.1+cu130", "cuda_version": "13.0"}
    new = {**MACHINE, "torch_version": "2.13.0+cpu", "cuda_version": None, "kernel": "6.1"}
    machine, software = split_differences(old, new)
    assert machine == {}  # the kernel only one side recorded is unknown there, not different
    assert describe_software(software) == "CUDA 13.0 → none; torch 2.12.1+cu130 → 2.13.0+cpu"
    comparison, status = gate(side(old, "a"), side(new, "b"), GateOptions())
    assert status == EXIT_OK and not comparison.informational
    assert comparison.table["decision"].tolist() == ["unchanged"]
    other_cpu = {**new, "cpu_model": "AMD EPYC"}
    with pytest.raises(ValueError, match=r"different machines or tools: cpu_model: 'Xeon' \(baseline\) vs 'AMD"):
        gate(side(old, "a"), side(other_cpu, "c"), GateOptions())


def test_a_run_keeps_the_fingerprint_older_readers_understand():
    fields = {**MACHINE, "torch_version": "2.13.0+cpu"}
    info = {
        "fingerprint": fingerprint(fields),
        "fingerprint_fields": fields,
        "machine_fields": {**MACHINE, "kernel": "6.1", "memory_bytes": 1 << 34},
        "software_fields": {"torch_version": "2.13.0+cpu", "allocator": "tcmalloc"},
    }
    recorded, read, refused = run_fingerprint(info)
    assert (recorded, refused) == (fingerprint(fields), False)  # the hash of the old fields, as before
    assert read == {**fields, "kernel": "6.1", "memory_bytes": 1 << 34, "allocator": "tcmalloc"}


def with_cpu(run: Path, target: Path, cpu_model: str) -> Path:
    """A copy of a saved run that says it ran on another CPU model, fingerprint and all."""
    document = json.loads(run.read_text())
    info = document["machine_info"]
    info["cpu_model"] = info["fingerprint_fields"]["cpu_model"] = info["machine_fields"]["cpu_model"] = cpu_model
    info["fingerprint"] = fingerprint(info["fingerprint_fields"])
    target.mkdir(parents=True, exist_ok=True)
    (target / run.name).write_text(json.dumps(document))
    return target / run.name


def test_compare_gives_verdicts_across_torch_versions_of_one_machine_and_refuses_another_cpu(
    tmp_path, capsys, monkeypatch
):
    """Real runs of torch 2.12.1 (CUDA build) and 2.13.0 (CPU build) on one machine; then the 2.12.1 runs on
    another CPU model."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    older, newer = TORCH_RUNS / "2.12.1", TORCH_RUNS / "2.13.0"
    status = compare_cli.main([str(older), str(newer), "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert status == EXIT_OK
    assert "Software under test differs: CUDA 13.0 → none; torch 2.12.1+cu130 → 2.13.0+cpu." in out
    verdicts = json.loads((tmp_path / "v.json").read_text())
    assert not verdicts["informational"] and verdicts["machine_differences"] == {}
    assert verdicts["software_differences"]["torch_version"] == ["2.12.1+cu130", "2.13.0+cpu"]
    assert [row["n_baseline"] for row in verdicts["benchmarks"]] == [3, 3]
    [folder] = {path.parent for path in promote([older], tmp_path / "baselines")}  # a stored baseline of 2.12.1
    assert compare_cli.main([str(folder), str(newer)]) == EXIT_OK
    assert "torch 2.12.1+cu130 → 2.13.0+cpu" in capsys.readouterr().out
    for run in sorted(older.glob("*.json")):
        with_cpu(run, tmp_path / "other-cpu", "Intel(R) Xeon(R) Platinum 8481C")
    status = compare_cli.main([str(tmp_path / "other-cpu"), str(newer)])
    err = capsys.readouterr().err
    assert status == EXIT_BAD_INPUT
    assert "different machines or tools: cpu_model: 'Intel(R) Xeon(R) Platinum 8481C' (baseline) vs 'AMD EPYC'" in err


# --- ab.py across interpreters: two plain venvs and a patched one, layered on this one ---------------------------

# Wraps torch.nn.functional.relu (4 calls per LeNet forward) with pure-Python work of a known size: ITERATIONS loop
# iterations per call, about 4% more instructions per batch-2 forward each 100 iterations.
PATCH = """
import functools
import itertools

import torch.nn.functional

ITERATIONS = 200
_relu = torch.nn.functional.relu


def _extra_work(iterations):
    flag = 0
    for _ in itertools.repeat(None, iterations):
        flag ^= 1
    return flag


@functools.wraps(_relu)
def relu(*args, **kwargs):
    _extra_work(ITERATIONS)
    return _relu(*args, **kwargs)


torch.nn.functional.relu = relu
"""

# The smallest selection that counts: one eager CPU case, batch 2, one phase, no metrics pass.
SELECTION = ["--preset", "smoke", "--phases", "forward_inference", "--no-metrics", "--benchmark-max-time=0.02"]


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two plain venvs and a patched one, at paths of one length: a count depends on the length of the
    interpreter's path (a plain layered venv against this interpreter counted 0.7% apart)."""
    folder = tmp_path_factory.mktemp("environments")
    names = {"plain-a": None, "plain-b": None, "patched": PATCH}
    return {name: layered_python(folder / name, patch) for name, patch in names.items()}


def skip_without_valgrind() -> None:
    reason = unavailable_reason("cpu")
    if reason and os.environ.get("LENET_REQUIRE_VALGRIND"):  # CI: counts are the evidence here, never skipped
        pytest.fail(f"LENET_REQUIRE_VALGRIND is set but {reason}")
    if reason:
        pytest.skip(reason)


def run_ab(baseline: Path, candidate: Path, calibration: Path, keep: Path, peaks_dir: Path) -> tuple[int, str]:
    """ab.py of two interpreters, one counted process a side, with ``calibration``'s count spread: status, output."""
    command = [
        sys.executable, str(REPO / "scripts" / "ab.py"), "--baseline-python", str(baseline),
        "--candidate-python", str(candidate), "--min-processes", "2", "--max-processes", "2", "--instructions", "on",
        "--count-processes", "1", "--count-calibration", str(calibration),
        "--keep", str(keep), "--json", str(keep / "ab.json"), "--", *SELECTION,
    ]  # fmt: skip
    env = {**os.environ, "LENET_PEAKS_DIR": str(peaks_dir)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    return done.returncode, done.stdout + done.stderr


def counted_runs(python: Path, folder: Path, peaks_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two counted processes of ``python``, run side by side exactly as ab.py runs a candidate's counted processes
    (its own runner, arguments and allocator): the runs and their pytest logs in ``folder``."""
    monkeypatch.setenv("LENET_PEAKS_DIR", str(peaks_dir))
    arguments = ["--baseline-python", sys.executable, "--candidate-python", str(python), "--", *SELECTION]
    the_plan, _ = ab_cli.plan(ab_cli.parse_args(arguments))
    run_side = ab_cli.side_runner(the_plan, {side: REPO for side in SIDES})
    folder.mkdir()
    outputs = [folder / f"000{index}.json" for index in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda out: run_side("candidate", out, out.with_suffix(".log"), True), outputs))
    assert statuses == [0, 0], [out.with_suffix(".log").read_text()[-2000:] for out in outputs]
    return outputs


@pytest.mark.slow
def test_ab_across_environments_sees_a_patched_torch_by_counts_and_two_plain_ones_unchanged(
    tmp_path, environments, peaks_dir, monkeypatch, capsys
):
    """A plain venv's two counted processes, side by side, promoted into a baseline: its count calibration. Then
    ab.py of another plain venv against a patched one, one counted process a side with that calibration, and
    compare.py of the baseline against the other plain venv's counted run. About 1 minute under valgrind."""
    skip_without_valgrind()
    plain, other, patched = environments["plain-a"], environments["plain-b"], environments["patched"]
    others = counted_runs(other, tmp_path / "plain-b", peaks_dir, monkeypatch)
    assert baseline_cli.main(["--root", str(tmp_path / "baselines"), "promote", str(tmp_path / "plain-b")]) == EXIT_OK
    [calibration] = (tmp_path / "baselines").iterdir()

    # a real counted run: its count, repeats and spread saved, and the lines at the end of its log
    for run in others:
        [bench] = json.loads(run.read_text())["benchmarks"]
        info = bench["extra_info"]
        assert info["instructions"] > 100_000  # a LeNet forward at batch 2 is millions
        assert len(info["instructions_repeats"]) == 1 and 0.0 <= info["instructions_spread"] < 0.05
        log = run.with_suffix(".log").read_text()
        assert "instructions counted for 1 case(s)" in log and "forward_inference-cpu-contiguous-fp32-eager-b2:" in log

    status, output = run_ab(plain, patched, calibration, tmp_path / "patched", peaks_dir)
    assert status == EXIT_REGRESSION, output
    verdicts = json.loads((tmp_path / "patched" / "ab.json").read_text())
    [row] = verdicts["benchmarks"]
    assert (row["decision"], row["count_verdict"], row["count_processes"]) == ("regressed", "regressed", "1 / 1")
    assert 1.02 < row["count_ratio"] < 1.5, row  # 800 loop iterations on ~2 M instructions a call
    sides = verdicts["environments"]
    assert sides["candidate"]["python_path"] == str(patched) and sides["baseline"]["python_path"] == str(plain)
    assert sides["baseline"]["torch_from"] == sides["candidate"]["torch_from"]
    assert f"candidate: {patched}: Python" in output and "(CPU build) from" in output

    # the two plain venvs: the same code, unchanged by counts (the baseline's two processes against ab.py's one)
    plain_run = tmp_path / "patched" / "counted" / "baseline" / "0001.json"
    status = compare_cli.main([str(calibration), str(plain_run), "--json", str(tmp_path / "plain.json")])
    assert status == EXIT_OK, capsys.readouterr()
    [row] = json.loads((tmp_path / "plain.json").read_text())["benchmarks"]
    assert (row["decision"], row["count_verdict"], row["count_processes"]) == ("unchanged", "unchanged", "2 / 1"), row


def test_an_interpreter_without_torch_is_one_line_and_exit_2_before_any_process(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)  # no torch on its path
    keep = tmp_path / "keep"
    command = [sys.executable, str(REPO / "scripts" / "ab.py"), "--baseline-python", str(bare / "bin" / "python")]
    result = subprocess.run([*command, "--keep", str(keep)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_BAD_INPUT, result.stdout + result.stderr
    expected = f"error: the baseline side: {bare / 'bin' / 'python'} cannot import torch: ModuleNotFoundError: "
    assert result.stderr.splitlines() == [expected + "No module named 'torch'"]
    assert not any(p.is_file() for p in keep.rglob("*"))


def test_the_counter_compiles_for_valgrind_on_a_torch_without_cpp_march():
    """torch 2.12's Inductor config has no cpp.march: setting it killed every counting process before its first case."""

    class Older:  # an Inductor cpp config that refuses unknown names, as torch's config modules do
        simdlen = None

        def __setattr__(self, name: str, value: object) -> None:
            if not hasattr(self, name):
                raise AttributeError(f"torch._inductor.config.cpp.{name} does not exist")
            object.__setattr__(self, name, value)

    older = Older()
    compile_for_valgrind(older)
    assert older.simdlen == 256 and not hasattr(older, "march")
    newer = types.SimpleNamespace(march=None, simdlen=None)
    compile_for_valgrind(newer)
    assert (newer.march, newer.simdlen) == ("x86-64-v3", 256)
