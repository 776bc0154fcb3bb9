"""How a benchmark process is started: its memory allocator and the CPUs it may run on.

A fresh process's medians vary between processes by far more than its rounds vary inside
it (results/studies/noise_study.md). Two causes can be set before the process starts:

* the allocator. glibc's malloc returns freed memory above its trim threshold to the
  kernel and serves large blocks by mmap, so a fresh process pays page faults on every
  activation-sized tensor until its dynamic thresholds settle. ``glibc-tuned`` raises those
  thresholds through glibc's tunables; ``jemalloc`` and ``tcmalloc`` are preloaded, with the
  settings ``torch.backends.xeon.run_cpu`` uses;
* CPU affinity: a process pinned to one CPU is never migrated between CPUs mid-round.

``describe`` records what a running process actually got (the allocator found in its
memory map, the malloc settings in its environment, its affinity) in every saved run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# glibc's malloc: serve blocks up to 32 MiB (the largest mmap threshold it accepts) from the heap,
# and keep up to 1 GiB of freed memory rather than hand it back to the kernel at every free.
GLIBC_TUNED = (
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=67108864"
)
JEMALLOC_CONF = "oversize_threshold:1,background_thread:true,metadata_thp:auto"  # as torch.backends.xeon.run_cpu
PRELOADED = {"jemalloc": "libjemalloc", "tcmalloc": "libtcmalloc"}
ALLOCATORS = ("glibc", "glibc-tuned", "jemalloc", "tcmalloc")
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
MALLOC_VARIABLES = ("GLIBC_TUNABLES", "MALLOC_CONF", "LD_PRELOAD")


class SetupError(ValueError):
    """The process set-up asked for cannot be had here; the message says what is missing."""


@dataclass(frozen=True)
class ProcessSetup:
    allocator: str = "glibc"
    pin: tuple[int, ...] = ()  # CPUs the process may run on; () leaves the affinity alone

    def __post_init__(self) -> None:
        if self.allocator not in ALLOCATORS:
            raise SetupError(f"allocator {self.allocator!r}: expected one of {', '.join(ALLOCATORS)}")

    @classmethod
    def parse(cls, allocator: str, pin: str) -> ProcessSetup:
        """From command-line text: an allocator name, and ``none``, ``last`` or a CPU list such as ``1`` or ``0,1``."""
        return cls(allocator, parse_pin(pin))

    @property
    def label(self) -> str:
        pinned = f", pinned to CPU {','.join(map(str, self.pin))}" if self.pin else ""
        return f"{self.allocator}{pinned}"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for this allocator (``base`` plus its variables); SetupError if its library is missing."""
        env = dict(base if base is not None else os.environ)
        for name in MALLOC_VARIABLES:
            env.pop(name, None)  # one allocator at a time: the caller's own settings would mix with ours
        if self.allocator == "glibc-tuned":
            env["GLIBC_TUNABLES"] = GLIBC_TUNED
        elif self.allocator in PRELOADED:
            env["LD_PRELOAD"] = str(find_library(PRELOADED[self.allocator]))
            if self.allocator == "jemalloc":
                env["MALLOC_CONF"] = JEMALLOC_CONF
        return env

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs before exec: set its affinity (inherited by everything it starts)."""
        if not self.pin:
            return None
        cpus = set(self.pin)
        return lambda: os.sched_setaffinity(0, cpus)


def parse_pin(text: str) -> tuple[int, ...]:
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    if text == "last":
        if not available:
            raise SetupError("--pin last: this system cannot set a process's CPU affinity")
        return (available[-1],)
    try:
        cpus = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise SetupError(f"--pin {text!r}: expected none, last, or CPU numbers such as 1 or 0,1") from None
    missing = [cpu for cpu in cpus if cpu not in available]
    if missing:
        raise SetupError(f"--pin {text!r}: CPU {missing[0]} is not one this process may use ({available})")
    return cpus


def find_library(stem: str) -> Path:
    """The shared library whose file name starts with ``stem`` (e.g. libjemalloc.so.2)."""
    for folder in LIBRARY_DIRS:
        found = sorted(Path(folder).glob(f"{stem}*.so*")) if Path(folder).is_dir() else []
        found = [path for path in found if "debug" not in path.name]
        if found:
            return found[0]
    raise SetupError(
        f"{stem} is not installed (looked in {', '.join(LIBRARY_DIRS)}); "
        "on Debian/Ubuntu: apt-get install libjemalloc2 libtcmalloc-minimal4"
    )


def loaded_allocator(maps: Path = Path("/proc/self/maps")) -> str:
    """Which malloc this process runs on: a preloaded jemalloc or tcmalloc, else glibc's."""
    try:
        text = maps.read_text()
    except OSError:
        return "unknown"
    for name, stem in PRELOADED.items():
        if re.search(rf"/{re.escape(stem)}[\w.-]*\.so", text):
            return name
    return "glibc"


def describe() -> dict[str, object]:
    """What this process got: recorded with every saved run."""
    allocator = loaded_allocator()
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if allocator == "glibc" and "glibc.malloc." in tunables:
        allocator = "glibc-tuned"
    return {
        "allocator": allocator,
        "malloc_settings": {name: os.environ[name] for name in MALLOC_VARIABLES if os.environ.get(name)},
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
