"""Is this machine quiet enough to benchmark on? The checks behind ``scripts/system.py``.

Reads (never changes) the CPUs and their isolation, SMT, the frequency governor and boost, the
load, steal and other processes' CPU use over a short sample, the busiest other processes,
ASLR, the memory allocator, memory and swap, transparent huge pages and hardware counters;
each :class:`Item` says what it is, whether it is fine for benchmarking, and what would make
the machine quieter. The bounds for steal and other processes' CPU are those the stability
checks use (``lenet/stability.py``); docs/stability.md explains each line. Every reader is
injectable, so tests give literal /proc and /sys text. Names other processes chose for
themselves are shown through :func:`lenet.terminal.printable`: a process may name itself
``"\\nALL GOOD\\x1b[1m"``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from lenet.stability import (
    MAX_BUSY,
    MAX_STEAL,
    TICKS_PER_SECOND,
    CpuTicks,
    Read,
    cpu_settings,
    parse_cpu_count,
    parse_loadavg,
    parse_proc_stat,
    read_file,
)
from lenet.terminal import printable

OK, WARN, INFO = "ok", "warning", "info"
MAX_LOAD = 1.0  # a 1-minute load at or above one runnable task competes with any benchmark
BUSY_PROCESS_SHARE = 0.05  # of one CPU: below this a process is background noise
ALLOCATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
ALLOCATOR_LIBRARIES = ("jemalloc", "tcmalloc")
ALLOCATOR_ADVICE = (
    "glibc malloc's defaults can put a process in a slow regime, many page faults per call and a "
    "slower step, depending on its history (docs/measuring.md, the CPU allocator): export "
    "MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=134217728 MALLOC_TOP_PAD_=67108864, or "
    "LD_PRELOAD jemalloc or tcmalloc, for baseline and candidate alike"
)


@dataclass(frozen=True)
class Item:
    """One line of the check: a topic, what was found, whether that is fine, and what to do."""

    topic: str
    value: str
    status: str  # OK, WARN or INFO
    advice: str = ""


@dataclass(frozen=True)
class Sample:
    """The machine's CPU time and each process's CPU ticks at one moment."""

    ticks: CpuTicks
    processes: dict[int, tuple[str, int]]  # pid -> (name, utime + stime ticks)


def _try(read: Read, path: str) -> str | None:
    try:
        return read(path).strip()
    except OSError:
        return None


def parse_process_stat(text: str) -> tuple[str, int]:
    """(name, utime + stime in ticks) from ``/proc/<pid>/stat``; the name may hold spaces and parentheses."""
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    return head.partition("(")[2], int(fields[11]) + int(fields[12])


def take_sample(read: Read, pids: Callable[[], Sequence[int]]) -> Sample:
    processes = {}
    for pid in pids():
        try:
            processes[pid] = parse_process_stat(read(f"/proc/{pid}/stat"))
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile, or is not ours to read
    return Sample(parse_proc_stat(read("/proc/stat")), processes)


def list_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def cpu_items(read: Read, affinity: Sequence[int]) -> list[Item]:
    online = _try(read, "/sys/devices/system/cpu/online") or "unknown"
    model = "unknown CPU"
    info = _try(read, "/proc/cpuinfo") or ""
    for line in info.splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    allowed = ",".join(map(str, affinity))
    items = [Item("CPUs", f"{model}; online {online}; this process may use {allowed}", INFO)]
    isolated = _try(read, "/sys/devices/system/cpu/isolated")
    nohz = _try(read, "/sys/devices/system/cpu/nohz_full")
    if isolated:
        items.append(
            Item("Isolated CPUs", f"{isolated} (nohz_full: {nohz or 'none'})", OK, f"pin: taskset -c {isolated}")
        )
    else:
        items.append(
            Item(
                "Isolated CPUs",
                "none",
                INFO,
                "for the quietest runs on a machine with CPUs to spare, boot with isolcpus=<cpus> "
                "nohz_full=<cpus> rcu_nocbs=<cpus> and pin the benchmark there with taskset",
            )
        )
    smt = _try(read, "/sys/devices/system/cpu/smt/control")
    if smt == "on":
        items.append(
            Item("SMT", "on", INFO, "hyperthread siblings share a core: pin to one thread per core, or turn SMT off")
        )
    else:
        items.append(Item("SMT", smt or "unavailable: no /sys/devices/system/cpu/smt/control", OK if smt else INFO))
    return items


def frequency_items(read: Read, affinity: Sequence[int]) -> list[Item]:
    settings = cpu_settings(read, affinity)
    if settings.governor.startswith("unavailable"):
        governor = Item("Governor", settings.governor, INFO, "the host sets the frequency; nothing to do here")
    elif set(settings.governor.split(",")) == {"performance"}:
        governor = Item("Governor", settings.governor, OK)
    else:
        governor = Item(
            "Governor",
            settings.governor,
            WARN,
            "sudo cpupower frequency-set -g performance (the clock then stays high)",
        )
    if settings.boost == "on":
        boost = Item(
            "Boost",
            "on",
            WARN,
            "turbo makes the clock depend on temperature and on the other cores' load: turn it off for steady "
            "numbers (echo 0 > /sys/devices/system/cpu/cpufreq/boost, or 1 > .../intel_pstate/no_turbo)",
        )
    else:
        boost = Item("Boost", settings.boost, OK if settings.boost == "off" else INFO)
    return [governor, boost]


def load_items(
    read: Read, first: Sample, second: Sample, seconds: float, ticks_per_second: float = TICKS_PER_SECOND
) -> list[Item]:
    """Load average, then steal, iowait and other processes' CPU between two samples, then the busiest processes."""
    text = _try(read, "/proc/stat") or ""
    cpus = parse_cpu_count(text) or 1
    load_text = _try(read, "/proc/loadavg")
    items = []
    if load_text is not None:
        load = parse_loadavg(load_text)
        status = WARN if load >= MAX_LOAD else OK
        advice = "wait until other work is done (the 1-minute load below 1)" if status == WARN else ""
        items.append(Item("Load", f"1-minute load average {load:.2f} on {cpus} CPUs", status, advice))
    ticks = second.ticks - first.ticks
    if ticks.total > 0:
        steal, iowait, busy = ticks.steal / ticks.total, ticks.iowait / ticks.total, ticks.busy / ticks.total
        where = f"over {seconds:g} s"
        items.append(
            Item(
                "Steal",
                f"{steal:.1%} of the CPUs' time {where}",
                WARN if steal > MAX_STEAL else OK,
                "the hypervisor gives this VM's CPUs to other guests: rerun later, or on a dedicated machine"
                if steal > MAX_STEAL
                else "",
            )
        )
        items.append(Item("I/O wait", f"{iowait:.1%} of the CPUs' time {where}", INFO))
        items.append(
            Item(
                "Other processes",
                f"{busy:.1%} of the CPUs' time {where} (bound {MAX_BUSY:.0%})",
                WARN if busy > MAX_BUSY else OK,
                "stop or wait for the processes below" if busy > MAX_BUSY else "",
            )
        )
    busy_processes = []
    for pid, (name, after) in second.processes.items():
        before = first.processes.get(pid)
        if before is None or before[0] != name:
            continue
        share = (after - before[1]) / ticks_per_second / seconds
        if share >= BUSY_PROCESS_SHARE:
            busy_processes.append((share, pid, name))
    for share, pid, name in sorted(busy_processes, reverse=True)[:8]:
        items.append(Item("  busy process", f"pid {pid} {printable(name)}: {share:.0%} of a CPU", WARN))
    return items


def loaded_allocator(maps: str) -> str | None:
    """The allocator library mapped into this process (``/proc/self/maps``): what took effect, not what
    ``LD_PRELOAD`` asked for (a wrong path, or a library that failed to load, leaves glibc malloc in place)."""
    for line in maps.splitlines():
        library = line.rsplit("/", 1)[-1] if "/" in line else ""
        for name in ALLOCATOR_LIBRARIES:
            if library.startswith(f"lib{name}"):
                return name
    return None


def _is_byte_count(value: str | None) -> bool:
    """glibc reads these variables as a decimal byte count; anything else is silently ignored."""
    return value is not None and value.strip().isdigit()


def _preload_note(preload: str) -> str:
    asked = [name for name in ALLOCATOR_LIBRARIES if name in preload]
    return f"; LD_PRELOAD names {asked[0]} but it is not loaded here" if asked else ""


def allocator_item(read: Read, environ: Mapping[str, str], exists: Callable[[str], bool]) -> Item:
    """The allocator that took effect in this process, or glibc's defaults with the advice."""
    loaded = loaded_allocator(_try(read, "/proc/self/maps") or "")
    tuned = [name for name in ALLOCATOR_VARIABLES if _is_byte_count(environ.get(name))]
    ignored = [f"{n}={printable(environ[n])}" for n in ALLOCATOR_VARIABLES if n in environ and n not in tuned]
    if loaded:
        return Item("Allocator", f"{loaded} (loaded in this process)", OK)
    if len(tuned) == len(ALLOCATOR_VARIABLES):
        return Item("Allocator", "glibc malloc, thresholds raised: " + ", ".join(tuned), OK)
    found = [
        path
        for path in (
            "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
            "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
            "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
        )
        if exists(path)
    ]
    hint = f" ({found[0]} is installed)" if found else " (Debian: apt install libjemalloc2)"
    return Item(
        "Allocator",
        "glibc malloc defaults"
        + (f", {', '.join(tuned)} set" if tuned else "")
        + (f"; not a byte count, ignored by glibc: {', '.join(ignored)}" if ignored else "")
        + _preload_note(environ.get("LD_PRELOAD", "")),
        WARN,
        ALLOCATOR_ADVICE + hint,
    )


def software_items(read: Read, environ: Mapping[str, str], exists: Callable[[str], bool]) -> list[Item]:
    items = []
    aslr = _try(read, "/proc/sys/kernel/randomize_va_space")
    meaning = {"0": "off", "1": "partial (stack, libraries)", "2": "full"}.get(aslr or "", "unavailable")
    items.append(
        Item(
            "ASLR",
            meaning,
            INFO,
            "leave it on: turning it off (setarch -R) did not narrow the spread of process medians here "
            "(docs/measuring.md); compare several processes instead",
        )
    )
    items.append(allocator_item(read, environ, exists))
    meminfo = _try(read, "/proc/meminfo") or ""
    memory = {line.partition(":")[0]: int(line.split()[1]) for line in meminfo.splitlines() if line.endswith("kB")}
    if "MemTotal" in memory and "MemAvailable" in memory:
        total, available = memory["MemTotal"], memory["MemAvailable"]
        low = available < 0.1 * total
        swap = memory.get("SwapTotal", 0) - memory.get("SwapFree", 0)
        value = f"{available / 2**20:.1f} of {total / 2**20:.1f} GiB available; swap used {swap / 2**20:.1f} GiB"
        advice = "little memory left: pages may be read back from disk (major faults); free memory" if low else ""
        items.append(Item("Memory", value, WARN if low else OK, advice))
    thp = _try(read, "/sys/kernel/mm/transparent_hugepage/enabled")
    if thp:
        mode = thp[thp.find("[") + 1 : thp.find("]")] if "[" in thp else thp
        items.append(Item("Huge pages", f"transparent huge pages: {mode}", INFO))
    counters = exists("/sys/bus/event_source/devices/cpu") or exists("/sys/bus/event_source/devices/cpu_core")
    items.append(
        Item(
            "Hardware counters",
            "available" if counters else "none (no cpu PMU: perf stat cannot count cycles here)",
            INFO,
            "" if counters else "instruction counts come from callgrind (pytest bench --instructions)",
        )
    )
    threads = [f"{name}={environ[name]}" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if name in environ]
    if threads:
        items.append(Item("Threads", ", ".join(threads), INFO))
    return items


def system_items(
    read: Read = read_file,
    environ: Mapping[str, str] = os.environ,
    seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    pids: Callable[[], Sequence[int]] = list_pids,
    exists: Callable[[str], bool] = os.path.exists,
    affinity: Sequence[int] | None = None,
) -> list[Item]:
    """Every line of the check, in order; ``read``, ``pids``, ``sleep`` and ``exists`` are injectable for tests."""
    cpus = sorted(affinity if affinity is not None else os.sched_getaffinity(0))
    items = [*cpu_items(read, cpus), *frequency_items(read, cpus)]
    try:
        first = take_sample(read, pids)
        sleep(seconds)
        second = take_sample(read, pids)
    except (OSError, ValueError) as error:
        items.append(Item("Load", f"unavailable: /proc/stat ({error})", INFO))
    else:
        items += load_items(read, first, second, seconds)
    return items + software_items(read, environ, exists)


def render(items: Sequence[Item]) -> str:
    marks = {OK: " ", WARN: "!", INFO: " "}
    width = max(len(item.topic) for item in items) if items else 0
    lines = ["lenet-bench system check: is this machine quiet enough to benchmark on?", ""]
    for item in items:
        lines.append(f"{marks[item.status]} {item.topic:<{width}}  {item.value}")
        if item.advice and item.status != OK:
            lines.append(f"  {'':<{width}}  -> {item.advice}")
    warnings = sum(item.status == WARN for item in items)
    lines += [
        "",
        f"{warnings} warning(s)."
        + (" Fix them, or expect the stability checks to flag benchmarks (docs/stability.md)." if warnings else ""),
    ]
    return "\n".join(lines)
