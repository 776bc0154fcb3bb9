"""What a result was measured on: versions, threads, devices, and a machine fingerprint.

The fingerprint helpers live in the torch-free ``lenet.fingerprint`` (the analysis code
reads runs without importing torch); they are re-exported here.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

from lenet import process_setup
from lenet.fingerprint import FINGERPRINT_FIELDS, MACHINE_FIELDS, SOFTWARE_FIELDS, differences, fingerprint

__all__ = ["FINGERPRINT_FIELDS", "collect", "cpu_count", "cpu_model", "differences", "fingerprint"]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def _config_version(pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1) if match else None


def cpu_count() -> int:
    """CPUs this process may run on (affinity-aware), which is what threads compete for."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def memory_bytes() -> int | None:
    """The machine's physical memory, where the system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this system
        return None


def collect() -> dict[str, Any]:
    """Versions, threads and devices, as flat JSON-ready fields.

    ``fingerprint`` hashes FINGERPRINT_FIELDS (as every earlier version did); ``machine_fields`` and
    ``software_fields`` split the facts into the machine and the software under test (``lenet.fingerprint``).
    """
    cuda = torch.cuda.is_available()
    setup = process_setup.describe()
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        # The machine's CPUs, not this process's affinity: a pinned run is the same machine (see process_setup).
        "cpu_count": os.cpu_count() or 1,
        "process_setup": setup,
        "memory_bytes": memory_bytes(),
        "kernel": platform.release(),
        "allocator": setup["allocator"],
        "system": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "torch_git_version": getattr(torch.version, "git_version", None),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "onednn_version": _config_version(r"MKL-DNN v([\w.]+)"),
        "mkl_version": _config_version(r"Math Kernel Library Version ([\w.]+)"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
        "gpu_memory_bytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
    }
    info["fingerprint_fields"] = {name: info[name] for name in FINGERPRINT_FIELDS}
    info["machine_fields"] = {name: info[name] for name in MACHINE_FIELDS if name in info}
    info["software_fields"] = {name: info[name] for name in SOFTWARE_FIELDS}
    info["fingerprint"] = fingerprint(info["fingerprint_fields"])
    return info
