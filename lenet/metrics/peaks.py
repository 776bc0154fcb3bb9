"""The machine's measured peaks: matmul GFLOP/s per precision and memory bandwidth, never a datasheet.

How (docs/metrics.md):

* **Compute**: ``torch.mm`` of square matrices at growing sizes (up to the size whose one call
  would take longer than ``max_call_seconds``, predicted from the last as n³), FLOPs = 2·n³;
  each size's best of ``repeats`` calls after a warm-up call.
  The peak of a precision is the best any size reached; the sweep is kept, so the file says what
  torch's matmul reaches at large sizes. CPU: fp32 and bf16; CUDA: fp32 (TF32 off), TF32, fp16 and bf16.
* **Bandwidth**: STREAM's copy (``a = b``, 2 arrays moved) and triad (``a = b + s·c``, 3 arrays
  moved), fp32 arrays of 4× the last-level cache (at least 64 MiB, at most 512 MiB each, and
  at most an eighth of the free memory), best of ``repeats`` after a warm-up pass.
  Bytes count each array once per pass (no write-allocate), as STREAM does.
* **Synchronized** before every clock read on CUDA; the clock is injectable.
* **Cached** once per machine: ``results/peaks/<fingerprint>-t<threads>-<device>.json`` holds the
  figures with how they were measured, the versions, and the identity they belong to
  (fingerprint, threads, torch, the CPU's feature flags, GPU). A file whose identity differs
  from this machine's, or that cannot be read, is measured again and replaced.

A roof is the best a machine's PyTorch reached on the simplest kernels, not a hardware limit;
LeNet's small layers reach a fraction of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lenet.paths import UnsafeNameError, safe_component, write_atomic
from lenet.stability import load_average
from lenet.timing import Clock

PEAKS_SCHEMA = "lenet-bench-peaks/1"
CPU_SIZES = (256, 512, 1024, 2048, 4096)
CUDA_SIZES = (1024, 2048, 4096, 8192)
REPEATS = 5
MAX_CALL_SECONDS = 1.0  # the sweep stops before a size whose one call would take longer (predicted as n^3)
MIN_ARRAY_BYTES = 64 << 20
MAX_ARRAY_BYTES = 512 << 20
DEFAULT_LLC_BYTES = 32 << 20  # when the last-level cache's size cannot be read
KINDS = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "tf32", "fp16", "bf16")}
# A variant's precision -> the matmul peak it is held against (AMP: the low precision, the optimistic roof).
VARIANT_PEAK = {"fp32": "fp32", "tf32": "tf32", "amp_bf16": "bf16", "amp_fp16": "fp16"}
METHOD = (
    "matmul: torch.mm of n x n at growing n, 2n^3 FLOPs, best of {repeats} per size, best size; "
    "bandwidth: STREAM copy (2 arrays) and triad (3 arrays) of {array_mib} MiB fp32 arrays, best of {repeats}"
)


class PeaksFileError(ValueError):
    """A peaks file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Peaks:
    """One device's measured peaks and where they come from."""

    identity: Mapping[str, Any]  # device, fingerprint, threads, torch_version, cpu_flags, gpu_name
    matmul_gflops: Mapping[str, float]  # kind -> best GFLOP/s over the sweep
    matmul_sweep: Mapping[str, Mapping[str, float]]  # kind -> {n: GFLOP/s}
    bandwidth_gbs: Mapping[str, float]  # copy, triad
    array_bytes: int
    method: str
    versions: Mapping[str, Any] = field(default_factory=dict)
    measured_at: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    schema: str = PEAKS_SCHEMA

    def compute_roof(self, precision: str) -> tuple[float, str] | None:
        """(GFLOP/s, "fp32 matmul") for a variant precision, or None when this device has no such peak."""
        kind = VARIANT_PEAK.get(precision, precision)
        value = self.matmul_gflops.get(kind)
        return (value, f"{kind} matmul") if value else None

    def bandwidth_roof(self) -> tuple[float, str] | None:
        """(GB/s, "triad"): the best bandwidth measured, or None."""
        if not self.bandwidth_gbs:
            return None
        kind = max(self.bandwidth_gbs, key=lambda k: self.bandwidth_gbs[k])
        return self.bandwidth_gbs[kind], kind

    def to_json(self) -> str:
        document = asdict(self)
        document["notes"] = list(self.notes)
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "peaks file") -> Peaks:
        """Parse and check a peaks file; PeaksFileError naming the first problem."""
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise PeaksFileError(f"{source}: not JSON ({error})") from None
        if not isinstance(document, dict) or document.get("schema") != PEAKS_SCHEMA:
            found = document.get("schema") if isinstance(document, dict) else type(document).__name__
            raise PeaksFileError(f"{source}: schema is {found!r}; expected {PEAKS_SCHEMA}")
        try:
            peaks = cls(
                identity=dict(document["identity"]),
                matmul_gflops={
                    str(k): _positive(v, f"matmul_gflops.{k}") for k, v in document["matmul_gflops"].items()
                },
                matmul_sweep={
                    str(k): {str(n): float(g) for n, g in sweep.items()}
                    for k, sweep in document["matmul_sweep"].items()
                },
                bandwidth_gbs={
                    str(k): _positive(v, f"bandwidth_gbs.{k}") for k, v in document["bandwidth_gbs"].items()
                },
                array_bytes=int(document["array_bytes"]),
                method=str(document["method"]),
                versions=dict(document.get("versions", {})),
                measured_at=str(document.get("measured_at", "")),
                seconds=float(document.get("seconds", 0.0)),
                notes=tuple(str(n) for n in document.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PeaksFileError(f"{source}: {type(error).__name__}: {error}") from None
        return peaks


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} is {value!r}; expected a positive number")
    return float(value)


# --- identity ------------------------------------------------------------------------------------


def cpu_flags_digest(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """A short hash of the CPU's feature flags: the CPU model's name alone does not say AMX or no AMX."""
    if not cpuinfo.is_file():
        return None
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.MULTILINE)
    if not match:
        return None
    return hashlib.sha256(" ".join(sorted(match.group(1).split())).encode()).hexdigest()[:12]


def identity(device: str, threads: int) -> dict[str, Any]:
    """What a peaks file must match to be this machine's: device, fingerprint, threads, torch, CPU flags, GPU."""
    import torch

    from lenet import machine

    info = machine.collect()
    # The fingerprint a run with ``threads`` threads records, whatever this process is set to now.
    fingerprint = machine.fingerprint({**info["fingerprint_fields"], "torch_threads": threads})
    return {
        "device": device,
        "fingerprint": fingerprint,
        "threads": threads,
        "torch_version": torch.__version__,
        "cpu_flags": cpu_flags_digest(),
        "gpu_name": info["gpu_name"] if device == "cuda" else None,
    }


def peaks_path(folder: Path, ident: Mapping[str, Any]) -> Path:
    """``<folder>/<fingerprint>-t<threads>-<device>.json``; UnsafeNameError for values that cannot name a file."""
    fingerprint = safe_component(ident.get("fingerprint"), "machine fingerprint")
    device = safe_component(ident.get("device"), "device")
    threads = ident.get("threads")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UnsafeNameError(f"thread count {threads!r} cannot name a peaks file; expected a positive integer")
    return folder / f"{fingerprint}-t{threads}-{device}.json"


# --- measuring -----------------------------------------------------------------------------------


def best_seconds(
    call: Callable[[], object], repeats: int, synchronize: Callable[[], None], clock: Clock = time.perf_counter
) -> float:
    """The fastest of ``repeats`` calls after one warm-up call, synchronized around each."""
    call()
    synchronize()
    best = math.inf
    for _ in range(repeats):
        start = clock()
        call()
        synchronize()
        best = min(best, clock() - start)
    return max(best, 1e-12)


def llc_bytes(device: str) -> int | None:
    """The last-level cache's size: the largest CPU cache sysfs lists, or the GPU's L2."""
    if device == "cuda":
        import torch

        return int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0)) or None
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        match = re.fullmatch(r"(\d+)([KMG]?)", entry.read_text().strip())
        if match:
            sizes.append(int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)])
    return max(sizes) if sizes else None


def free_bytes(device: str) -> int | None:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        match = re.search(r"^MemAvailable:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) << 10
    return None


def array_bytes_for(llc: int | None, free: int | None) -> tuple[int, list[str]]:
    """Each bandwidth array's size: 4x the last-level cache, clamped; notes say when the rule could not hold."""
    notes = []
    wanted = 4 * (llc or DEFAULT_LLC_BYTES)
    if llc is None:
        notes.append(f"last-level cache size unknown; assumed {DEFAULT_LLC_BYTES >> 20} MiB")
    size = min(max(wanted, MIN_ARRAY_BYTES), MAX_ARRAY_BYTES)
    if free is not None and size > free // 8:
        size = max(1 << 20, free // 8)
    if size < wanted:
        notes.append(
            f"bandwidth arrays of {size >> 20} MiB are under 4x the last-level cache ({(llc or 0) >> 20} MiB): "
            "part of the traffic may be served from cache"
        )
    return size, notes


def matmul_sweep(
    device: str,
    kind: str,
    sizes: Sequence[int],
    repeats: int = REPEATS,
    max_call_seconds: float = MAX_CALL_SECONDS,
    clock: Clock = time.perf_counter,
) -> dict[str, float]:
    """GFLOP/s of ``torch.mm`` at each size, smallest first, until a call would take ``max_call_seconds``."""
    import torch

    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[kind]
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    results: dict[str, float] = {}
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = kind == "tf32"
    try:
        generator = torch.Generator(device=device).manual_seed(0)
        ordered = sorted(sizes)
        for index, n in enumerate(ordered):
            a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
            b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
            out = torch.empty(n, n, device=device, dtype=dtype)
            seconds = best_seconds(lambda a=a, b=b, out=out: torch.mm(a, b, out=out), repeats, synchronize, clock)
            results[str(n)] = 2 * n**3 / seconds / 1e9
            del a, b, out
            following = ordered[index + 1] if index + 1 < len(ordered) else None
            if following is not None and seconds * (following / n) ** 3 > max_call_seconds:
                break
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return results


def bandwidth(
    device: str, array_bytes: int, repeats: int = REPEATS, clock: Clock = time.perf_counter
) -> dict[str, float]:
    """STREAM copy and triad GB/s on fp32 arrays of ``array_bytes`` each."""
    import torch

    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    n = max(1, array_bytes // 4)
    a = torch.zeros(n, device=device)  # zeros, not empty: every page is touched before timing
    b = torch.ones(n, device=device)
    c = torch.full((n,), 2.0, device=device)
    copy = best_seconds(lambda: a.copy_(b), repeats, synchronize, clock)
    triad = best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a), repeats, synchronize, clock)
    return {"copy": 2 * n * 4 / copy / 1e9, "triad": 3 * n * 4 / triad / 1e9}


def measure_peaks(
    ident: Mapping[str, Any],
    sizes: Sequence[int] | None = None,
    array_bytes: int | None = None,
    repeats: int = REPEATS,
    clock: Clock = time.perf_counter,
) -> Peaks:
    """Measure the peaks of ``ident['device']`` with ``ident['threads']`` threads (set here, then restored)."""
    import torch

    from lenet import machine

    device = str(ident["device"])
    if device not in KINDS:
        raise ValueError(f"peaks are measured on {', '.join(KINDS)}; not on {device!r}")
    start = time.perf_counter()
    notes: list[str] = []
    if array_bytes is None:
        array_bytes, notes = array_bytes_for(llc_bytes(device), free_bytes(device))
    load = load_average()
    if load is not None:  # peaks measured on a busy machine are low: say how busy it was
        notes.append(f"load average {load:.2f} on {machine.cpu_count()} CPUs before measuring")
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(int(ident["threads"]))
    try:
        sweep = {
            kind: matmul_sweep(
                device, kind, sizes or (CUDA_SIZES if device == "cuda" else CPU_SIZES), repeats, clock=clock
            )
            for kind in KINDS[device]
        }
        memory = bandwidth(device, array_bytes, repeats, clock)
    finally:
        torch.set_num_threads(saved_threads)
    info = machine.collect()
    versions = {
        k: info.get(k) for k in ("torch_version", "cuda_version", "onednn_version", "mkl_version", "cpu_capability")
    }
    return Peaks(
        identity=dict(ident),
        matmul_gflops={kind: max(values.values()) for kind, values in sweep.items() if values},
        matmul_sweep=sweep,
        bandwidth_gbs=memory,
        array_bytes=array_bytes,
        method=METHOD.format(repeats=repeats, array_mib=array_bytes >> 20),
        versions={**versions, "cpu_model": info.get("cpu_model"), "gpu_name": info.get("gpu_name")},
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )


# --- the cache -----------------------------------------------------------------------------------


def load_peaks(path: Path, ident: Mapping[str, Any]) -> Peaks:
    """The peaks in ``path`` if they are this identity's; PeaksFileError (or OSError) saying why not."""
    peaks = Peaks.from_json(path.read_text(encoding="utf-8"), str(path))
    mismatched = sorted(k for k in ident if peaks.identity.get(k) != ident[k])
    if mismatched:
        changes = ", ".join(f"{k} {peaks.identity.get(k)!r} -> {ident[k]!r}" for k in mismatched)
        raise PeaksFileError(f"{path}: measured on another machine state ({changes})")
    return peaks


def save_peaks(folder: Path, peaks: Peaks) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_atomic(peaks_path(folder, peaks.identity), peaks.to_json())


def cached_peaks(
    folder: Path,
    ident: Mapping[str, Any],
    measure: Callable[[Mapping[str, Any]], Peaks] = measure_peaks,
    force: bool = False,
) -> tuple[Peaks, Path, str]:
    """This identity's peaks from ``folder``, else measured and saved there: (peaks, file, what happened)."""
    path = peaks_path(folder, ident)
    reason = "no cached peaks" if not path.exists() else "measuring anew (forced)"
    if path.exists() and not force:
        try:
            return load_peaks(path, ident), path, f"read {path}"
        except (PeaksFileError, OSError) as error:
            reason = f"{error}; measured again"
    folder.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made is said before seconds of measuring
    peaks = measure(ident)
    save_peaks(folder, peaks)
    return peaks, path, f"{reason}: measured in {peaks.seconds:.1f} s, saved to {path}"


class PeaksCache:
    """The run's peaks, per device, read or measured once on first use (``--peaks-dir``)."""

    def __init__(self, folder: Path, threads: int, measure: Callable[[Mapping[str, Any]], Peaks] = measure_peaks):
        self.folder = folder
        self.threads = threads
        self.measure = measure
        self.found: dict[str, tuple[Peaks, Path] | str] = {}
        self.log: list[str] = []

    def get(self, device: str, measure_if_missing: bool = True) -> tuple[Peaks, Path] | str:
        """(peaks, file) for ``device``, or the one-line reason there are none.

        ``measure_if_missing`` False only reads the cache (a run stopped early: the user wants out).
        """
        if device not in self.found:
            try:
                ident = identity(device, self.threads)
                if measure_if_missing:
                    peaks, path, note = cached_peaks(self.folder, ident, self.measure)
                else:
                    path = peaks_path(self.folder, ident)
                    peaks, note = load_peaks(path, ident), f"read {path}"
                self.found[device] = (peaks, path)
                self.log.append(f"lenet-bench: {device} peaks: {note}")
            except (RuntimeError, OSError, ValueError) as error:
                self.found[device] = f"peaks not measured: {type(error).__name__}: {str(error).splitlines()[0]}"
                self.log.append(f"lenet-bench: {device} {self.found[device]}")
        return self.found[device]


def describe(peaks: Peaks) -> list[str]:
    """Lines for a terminal: each peak and the sweep behind it."""
    lines = [f"peaks of {peaks.identity.get('device')} with {peaks.identity.get('threads')} thread(s):"]
    for kind, value in peaks.matmul_gflops.items():
        points = sorted(peaks.matmul_sweep.get(kind, {}).items(), key=lambda item: int(item[0]))
        sweep = ", ".join(f"n={n}: {g:,.1f}" for n, g in points)
        lines.append(f"  {kind} matmul: {value:,.1f} GFLOP/s  ({sweep})")
    for kind, value in peaks.bandwidth_gbs.items():
        lines.append(f"  {kind}: {value:,.1f} GB/s ({peaks.array_bytes >> 20} MiB arrays)")
    lines += [f"  note: {note}" for note in peaks.notes]
    lines.append(f"  measured in {peaks.seconds:.1f} s at {peaks.measured_at}")
    return lines
