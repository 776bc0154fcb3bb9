"""A machine's fingerprint: which saved runs may be compared. Torch-free, so analysis code can use it.

The fingerprint hashes exactly the facts that change a LeNet timing (CPU model and
count, GPU, torch/CUDA/cuDNN versions, thread count, OS and Python), so two saved
runs are comparable when, and only when, their fingerprints match. A fingerprint names
folders and files, so one read from a file is used only when :func:`is_safe_name` accepts it. lenet-bench
records these facts in ``machine_info`` (``lenet.machine.collect``); for runs made
without it, the fingerprint hashes what pytest-benchmark itself records.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lenet.paths import is_safe_name

FINGERPRINT_FIELDS = (
    "cpu_model",
    "cpu_count",
    "system",
    "machine",
    "python",
    "torch_version",
    "cuda_version",
    "cudnn_version",
    "gpu_name",
    "torch_threads",
)


def fingerprint(fields: dict[str, Any]) -> str:
    """A short stable hash of the fingerprint fields (order-independent)."""
    canonical = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def differences(left: dict[str, Any], right: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The fingerprint fields in which two machines differ: name -> (left, right)."""
    names = sorted(set(left) | set(right))
    return {name: (left.get(name), right.get(name)) for name in names if left.get(name) != right.get(name)}


def foreign_fields(machine_info: dict[str, Any]) -> dict[str, Any]:
    """For runs made without lenet-bench: the machine facts pytest-benchmark itself records."""
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
    return {
        "cpu": cpu.get("brand_raw") or cpu.get("brand") or machine_info.get("processor"),
        "count": cpu.get("count"),
        "system": machine_info.get("system"),
        "machine": machine_info.get("machine"),
        "python": machine_info.get("python_version"),
        "node": machine_info.get("node"),
    }


def run_fingerprint(machine_info: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """(fingerprint, the fields it stands for, whether the recorded one was refused) of a saved run's
    ``machine_info``: the recorded fingerprint when it is a safe name (it names baseline folders and
    plot files), else the hash of the fields."""
    ours = machine_info.get("fingerprint_fields")
    fields = ours if isinstance(ours, dict) else foreign_fields(machine_info)
    recorded = machine_info.get("fingerprint")
    if recorded is None or recorded == "":
        return fingerprint(fields), fields, False
    if is_safe_name(recorded):
        return recorded, fields, False
    return fingerprint(fields), fields, True
