"""Two environments on one machine: the fingerprint split, compare across torch versions, ab.py across interpreters."""

import json
from pathlib import Path

import pytest

from lenet.analysis.compare import EXIT_BAD_INPUT, EXIT_OK, GateOptions, Side, gate
from lenet.cli import compare as compare_cli
from lenet.fingerprint import describe_software, fingerprint, run_fingerprint, split_differences

RUNS = Path(__file__).parent / "fixtures" / "runs"
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


def as_torch(run: Path, target: Path, torch_version: str, cpu_model: str | None = None) -> Path:
    """A copy of a saved run with its machine_info rewritten to another torch (and CPU), fingerprint and all."""
    document = json.loads(run.read_text())
    info = document["machine_info"]
    fields = {**info["fingerprint_fields"], "torch_version": torch_version, "cuda_version": "13.0"}
    if cpu_model is not None:
        fields["cpu_model"] = info["cpu_model"] = cpu_model
    info.update(torch_version=torch_version, cuda_version="13.0", fingerprint_fields=fields)
    info["fingerprint"] = fingerprint(fields)
    target.mkdir(parents=True, exist_ok=True)
    (target / run.name).write_text(json.dumps(document))
    return target / run.name


def test_compare_gives_verdicts_across_torch_versions_of_one_machine_and_refuses_another_cpu(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    runs = sorted((RUNS / "lenet-cpu").rglob("*.json"))
    older = [as_torch(run, tmp_path / "torch-2.12", "2.12.1+cu130") for run in runs]
    status = compare_cli.main([str(tmp_path / "torch-2.12"), *map(str, runs), "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert status == EXIT_OK
    assert "Software under test differs: CUDA 13.0 → none; torch 2.12.1+cu130 → 2.13.0+cpu." in out
    verdicts = json.loads((tmp_path / "v.json").read_text())
    assert not verdicts["informational"] and verdicts["machine_differences"] == {}
    assert verdicts["software_differences"]["torch_version"] == ["2.12.1+cu130", "2.13.0+cpu"]
    for run in older:
        as_torch(run, tmp_path / "other-cpu", "2.12.1+cu130", cpu_model="AMD EPYC 7B13")
    status = compare_cli.main([str(tmp_path / "other-cpu"), *map(str, runs)])
    err = capsys.readouterr().err
    assert status == EXIT_BAD_INPUT
    assert "different machines or tools: cpu_model: 'AMD EPYC 7B13' (baseline) vs 'Intel(R) Xeon(R) Processor'" in err
