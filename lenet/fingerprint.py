"""A machine's fingerprint: which saved runs may be compared. Torch-free, so analysis code can use it.

The fingerprint hashes the facts that change a LeNet timing (CPU model and count, GPU,
torch/CUDA/cuDNN versions, thread count, OS and Python). Those facts are of two kinds:

* the **machine** (:data:`MACHINE_FIELDS`: CPU, GPU model, memory, OS, kernel, threads): runs
  made on different machines are never compared with a verdict. The process set-up (allocator,
  pinning) is recorded per process in ``process_setup``, not here: one baseline mixes pinned time
  processes with unpinned counted ones, and the allocator is software under test;
* the **software under test** (:data:`SOFTWARE_FIELDS`: Python, torch, CUDA, cuDNN, the
  allocator; the project's commit is in ``commit_info``): that is what an A/B compares, so
  runs that differ only here get real verdicts, and the summary names what differs.

The recorded ``fingerprint`` still hashes :data:`FINGERPRINT_FIELDS`, as it always has, so
runs group, name baseline folders and read in older versions of this project as before;
``machine_fields`` and ``software_fields`` sit beside it. A fingerprint names folders and
files, so one read from a file is used only when :func:`is_safe_name` accepts it.
lenet-bench records these facts in ``machine_info`` (``lenet.machine.collect``); for runs
made without it, the fingerprint hashes what pytest-benchmark itself records.
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

# What a run ran on. ``cpu``, ``count`` and ``node`` are what runs made without lenet-bench record.
MACHINE_FIELDS = (
    "cpu_model",
    "cpu_count",
    "system",
    "machine",
    "gpu_name",
    "torch_threads",
    "memory_bytes",
    "kernel",
    "cpu",
    "count",
    "node",
)
# What an A/B may change: the software under test (the project's commit is recorded in commit_info).
SOFTWARE_FIELDS = ("python", "torch_version", "cuda_version", "cudnn_version", "allocator")
# How a summary names a software field: "torch 2.12.1 → 2.13.0".
SOFTWARE_NAMES = {
    "python": "Python",
    "torch_version": "torch",
    "cuda_version": "CUDA",
    "cudnn_version": "cuDNN",
    "allocator": "allocator",
}


def fingerprint(fields: dict[str, Any]) -> str:
    """A short stable hash of the fingerprint fields (order-independent)."""
    canonical = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def differences(left: dict[str, Any], right: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The fingerprint fields in which two machines differ: name -> (left, right)."""
    names = sorted(set(left) | set(right))
    return {name: (left.get(name), right.get(name)) for name in names if left.get(name) != right.get(name)}


def split_differences(
    left: dict[str, Any], right: dict[str, Any]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """(machine differences, software differences) between two runs' fingerprint fields.

    A field only one side recorded (older runs lack memory, kernel and the process set-up) is
    unknown there, not different. A field that is neither machine nor software (a future one)
    counts as machine: refusing is the safe side.
    """
    shared = {name: (left[name], right[name]) for name in sorted(set(left) & set(right)) if left[name] != right[name]}
    software = {name: pair for name, pair in shared.items() if name in SOFTWARE_FIELDS}
    machine = {name: pair for name, pair in shared.items() if name not in SOFTWARE_FIELDS}
    return machine, software


def describe_software(software: dict[str, tuple[Any, Any]]) -> str:
    """``torch 2.12.1+cu130 → 2.13.0+cpu; CUDA 13.0 → none``: what an A/B of two environments changed."""
    return "; ".join(
        f"{SOFTWARE_NAMES.get(name, name)} {a if a is not None else 'none'} → {b if b is not None else 'none'}"
        for name, (a, b) in software.items()
    )


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
    plot files), else the hash of the fields.

    The fields are the hashed ones, with ``machine_fields`` and ``software_fields`` where the run
    recorded them (they add facts the hash leaves out, for the comparison to tell the kinds apart).
    """
    ours = machine_info.get("fingerprint_fields")
    hashed = ours if isinstance(ours, dict) else foreign_fields(machine_info)
    fields = dict(hashed)
    for key in ("machine_fields", "software_fields"):
        more = machine_info.get(key)
        if isinstance(ours, dict) and isinstance(more, dict):
            fields.update({name: value for name, value in more.items() if name not in hashed})
    recorded = machine_info.get("fingerprint")
    if recorded is None or recorded == "":
        return fingerprint(hashed), fields, False
    if is_safe_name(recorded):
        return recorded, fields, False
    return fingerprint(hashed), fields, True
