"""The machine's state around a benchmark's timed rounds, and the checks that say when not to trust it.

A benchmark measured while another program was busy on the same cores, or while the VM lost
its CPUs to steal, saves a number as confident as a quiet one. So around every benchmark's
timed rounds (never inside them) the harness takes two snapshots, each costing microseconds:

* **the machine** (``/proc/stat``, ``/proc/loadavg``): the share of all CPUs' time stolen by
  the hypervisor, spent waiting for I/O, and used by *other* processes (the machine's busy
  time less this process's own CPU time), and the 1-minute load before and after;
* **this process** (``getrusage``): CPU time against wall time, minor and major page faults
  and context switches, per call. The untimed per-round set-up of a pedantic benchmark is
  metered on its own and left out (:class:`SetupMeter`). A plain benchmark's block also holds
  pytest-benchmark's calibration call and its one untimed call after the rounds; they are
  counted as calls.

The CPU frequency governor and boost are read where the kernel exposes them; a missing file
gives ``unavailable: <reason>`` rather than a guess.

Then pure checks over the round times and that state each return a :class:`Flag` with a name,
a reason carrying the numbers, and advice (:data:`ADVICE`):

==============  ===========================================================================
``few_rounds``  fewer rounds than spread and drift can be judged from
``spread``      the rounds' robust spread (1.4826 MAD / median) beyond what quiet runs show
``drift``       the last third of the rounds' median differs from the first third's
``steal``       the hypervisor stole more than a bound of the CPUs' time during the rounds
``busy``        other processes used more than a bound of the CPUs' time during the rounds,
                and preempted this process at least every other call (both shares judged
                beyond the uncertainty of /proc/stat's ticks over the span)
``page_faults`` minor page faults per call above a bound (the allocator's slow regime), or
                any major fault (memory read back from disk)
``phase_sum``   the whole train step against the sum of its phases (same variant, batch,
                optimizer), out of tolerance: needs several benchmarks, so it runs at the
                end of a session and again in the report
==============  ===========================================================================

The bounds are named constants, set from quiet runs of the quick preset on the shared 2-core
VM: ``results/studies/stability_calibration.md`` (made by ``studies/stability_study.py``).
``--stability-bounds`` (``LENET_STABILITY_BOUNDS``) overrides them for a run. Every file read
goes through an injectable ``read``, so tests run the parsers on literal text.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lenet.runs.record import Stability

Read = Callable[[str], str]  # path -> the file's text; raises OSError when it cannot be read

UNAVAILABLE = "unavailable: "
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat's unit

# Bounds, each set with a margin over what quiet quick-preset runs reached, and checked against
# runs disturbed on purpose: results/studies/stability_calibration.md (studies/stability_study.py).
MIN_ROUNDS = 10  # below this, the thirds of the drift check hold 3 rounds or fewer
MAX_SPREAD = 0.25  # robust spread of the round times (1.4826 MAD / median)
MAX_DRIFT = 0.15  # |median of the last third / median of the first third - 1|
MAX_STEAL = 0.10  # share of all CPUs' time stolen by the hypervisor during the rounds
MAX_BUSY = 0.10  # share of all CPUs' time used by other processes during the rounds
MIN_PREEMPTIONS = 0.5  # involuntary switches per call for a busy machine to have reached the calls
MAX_MINOR_FAULTS_PER_CALL = 50.0  # quiet runs pay about none; the allocator's slow regime, hundreds
PHASE_SUM_RANGE = (0.7, 1.5)  # train step / (forward_train + backward + optimizer_step)

CHECKS = ("few_rounds", "spread", "drift", "steal", "busy", "page_faults", "phase_sum")
ADVICE = {
    "few_rounds": "each round was slow, so few fitted in --benchmark-max-time: raise it "
    "(or --benchmark-min-rounds), and check that the machine was quiet",
    "spread": "the rounds disagree with each other: close other programs, rerun on a quiet machine "
    "(`python scripts/system.py` says what is busy), or pass --rerun-unstable 2",
    "drift": "the rounds got slower or faster as they ran: something started or stopped meanwhile "
    "(another program, thermal or power limits); rerun on a quiet machine",
    "steal": "the hypervisor gave this VM's CPUs to other guests: rerun later, or on a dedicated machine",
    "busy": "other processes ran on this machine during the rounds: stop them or wait for them "
    "(`python scripts/system.py` lists them), then rerun",
    "page_faults": "the process returns memory to the OS and faults it back each call (glibc malloc's "
    "default): set MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=134217728 "
    "MALLOC_TOP_PAD_=67108864, or preload jemalloc/tcmalloc, for baseline and candidate alike "
    "(docs/stability.md); a major fault means memory came back from disk: free memory",
    "phase_sum": "the whole step and its phases disagree, so one of them was disturbed: rerun them "
    "together on a quiet machine",
}


# --- reading the machine ---------------------------------------------------------------------


def read_file(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


@dataclass(frozen=True)
class CpuTicks:
    """The ``cpu`` line of ``/proc/stat``: all CPUs' time since boot, in ticks (guest time is in ``user``)."""

    user: int
    nice: int
    system: int
    idle: int
    iowait: int
    irq: int
    softirq: int
    steal: int

    @property
    def busy(self) -> int:
        return self.user + self.nice + self.system + self.irq + self.softirq

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.iowait + self.steal

    def __sub__(self, other: CpuTicks) -> CpuTicks:
        return CpuTicks(*(getattr(self, f.name) - getattr(other, f.name) for f in dataclasses.fields(self)))


def parse_proc_stat(text: str) -> CpuTicks:
    """The aggregate ``cpu`` line of ``/proc/stat``; ValueError when the text has none."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            # Kernels before 2.6.11 had no steal column (and 2.6.0 no irq/softirq).
            return CpuTicks(*values, *[0] * (8 - len(values)))
    raise ValueError("no aggregate 'cpu' line")


def parse_cpu_count(text: str) -> int:
    """How many CPUs ``/proc/stat`` lists (``cpu0``, ``cpu1``, ...)."""
    return sum(1 for line in text.splitlines() if line.startswith("cpu") and line[3:4].isdigit())


def parse_loadavg(text: str) -> float:
    """The 1-minute load average from ``/proc/loadavg``."""
    return float(text.split()[0])


def load_average(read: Read = read_file) -> float | None:
    """This machine's 1-minute load average, or None where ``/proc/loadavg`` cannot be read."""
    try:
        return parse_loadavg(read("/proc/loadavg"))
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class ProcessUsage:
    """This process's (all threads') resource use since it started, from ``getrusage``."""

    cpu_seconds: float = 0.0
    minor_faults: int = 0
    major_faults: int = 0
    voluntary_switches: int = 0
    involuntary_switches: int = 0
    wall: float = 0.0  # the clock when it was read (a difference is a duration)

    def __sub__(self, other: ProcessUsage) -> ProcessUsage:
        return ProcessUsage(*(getattr(self, f.name) - getattr(other, f.name) for f in dataclasses.fields(self)))

    def __add__(self, other: ProcessUsage) -> ProcessUsage:
        return ProcessUsage(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))


def process_usage(clock: Callable[[], float] = time.perf_counter) -> ProcessUsage:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ProcessUsage(
        usage.ru_utime + usage.ru_stime, usage.ru_minflt, usage.ru_majflt, usage.ru_nvcsw, usage.ru_nivcsw, clock()
    )


@dataclass(frozen=True)
class Snapshot:
    """The machine and this process at one moment: taken just before and just after the timed rounds."""

    usage: ProcessUsage
    ticks: CpuTicks | None
    load: float | None
    problem: str | None = None  # why ``ticks`` or ``load`` is missing


def take_snapshot(read: Read = read_file, usage: Callable[[], ProcessUsage] = process_usage) -> Snapshot:
    """Read ``/proc/stat``, ``/proc/loadavg`` and ``getrusage`` (tens of microseconds in all)."""
    ticks = load = problem = None
    try:
        ticks = parse_proc_stat(read("/proc/stat"))
        load = parse_loadavg(read("/proc/loadavg"))
    except (OSError, ValueError, IndexError) as error:
        problem = f"/proc/stat or /proc/loadavg: {getattr(error, 'strerror', None) or error} (not Linux?)"
    return Snapshot(usage(), ticks, load, problem)


@dataclass(frozen=True)
class CpuSettings:
    """How the kernel drives the CPUs: the frequency governor and turbo/boost, or why unknown."""

    governor: str
    boost: str


def cpu_settings(read: Read = read_file, cpus: Iterable[int] | None = None) -> CpuSettings:
    """The governors of ``cpus`` (default: those this process may use), and whether boost is on."""
    chosen = sorted(cpus if cpus is not None else os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else [0])
    governors = []
    for cpu in chosen:
        try:
            governors.append(read(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor").strip())
        except OSError:
            governors = []
            break
    governor = ",".join(dict.fromkeys(governors)) or f"{UNAVAILABLE}no cpufreq driver (usual in a VM)"
    return CpuSettings(governor, _boost(read))


def _boost(read: Read) -> str:
    for path, on in (
        ("/sys/devices/system/cpu/cpufreq/boost", "1"),
        ("/sys/devices/system/cpu/intel_pstate/no_turbo", "0"),
    ):
        try:
            return "on" if read(path).strip() == on else "off"
        except OSError:
            continue
    return f"{UNAVAILABLE}no boost or no_turbo switch in /sys"


class SetupMeter:
    """Wraps a pedantic benchmark's untimed set-up so its resource use can be left out of the rounds'.

    Two ``getrusage`` reads per round, both outside the timed region.
    """

    def __init__(self, setup: Callable[[], Any], usage: Callable[[], ProcessUsage] = process_usage) -> None:
        self._setup = setup
        self._usage = usage
        self.total = ProcessUsage()
        self.calls = 0

    def __call__(self) -> Any:
        before = self._usage()
        result = self._setup()
        self.total = self.total + (self._usage() - before)
        self.calls += 1
        return result


# --- the state over the rounds ---------------------------------------------------------------


@dataclass(frozen=True)
class RoundsState:
    """What the machine and this process did during one benchmark's timed rounds (set-up left out)."""

    calls: int
    wall_seconds: float  # the rounds alone (set-up left out)
    own: ProcessUsage  # this process's use during the rounds
    load_before: float | None = None
    load_after: float | None = None
    steal_share: float | None = None  # of all CPUs' time during the block
    iowait_share: float | None = None
    busy_share: float | None = None  # other processes' CPU time / all CPUs' time
    settings: CpuSettings | None = None
    unavailable: str | None = None
    sampled_seconds: float = 0.0  # between the snapshots (set-ups included): the span the shares cover

    @property
    def cpu_per_wall(self) -> float | None:
        return self.own.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else None

    def per_call(self, count: float) -> float | None:
        return count / self.calls if self.calls > 0 else None


def rounds_state(
    before: Snapshot,
    after: Snapshot,
    calls: int,
    setup: ProcessUsage = ProcessUsage(),
    settings: CpuSettings | None = None,
    ticks_per_second: float = TICKS_PER_SECOND,
) -> RoundsState:
    """The state between two snapshots; ``setup`` (what the untimed set-ups used) is left out of this process's use."""
    block = after.usage - before.usage
    own = block - setup
    steal = iowait = busy = None
    unavailable = after.problem or before.problem
    if before.ticks is not None and after.ticks is not None:
        ticks = after.ticks - before.ticks
        if ticks.total <= 0:
            unavailable = "the rounds were over before /proc/stat counted a tick"
        else:
            steal, iowait = ticks.steal / ticks.total, ticks.iowait / ticks.total
            # Other processes' time: the machine's busy time less this process's whole block (set-up included).
            others = max(0.0, ticks.busy / ticks_per_second - block.cpu_seconds)
            busy = min(1.0, others / (ticks.total / ticks_per_second))
    return RoundsState(
        calls=calls,
        wall_seconds=own.wall,
        own=own,
        load_before=before.load,
        load_after=after.load,
        steal_share=steal,
        iowait_share=iowait,
        busy_share=busy,
        settings=settings,
        unavailable=unavailable,
        sampled_seconds=block.wall,
    )


# --- the checks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One reason not to trust a benchmark: the check's name and a one-line reason with the numbers."""

    check: str
    reason: str

    @property
    def advice(self) -> str:
        return ADVICE[self.check]


@dataclass(frozen=True)
class Bounds:
    """Where each check draws its line (defaults: the calibrated constants above)."""

    min_rounds: int = MIN_ROUNDS
    spread: float = MAX_SPREAD
    drift: float = MAX_DRIFT
    steal: float = MAX_STEAL
    busy: float = MAX_BUSY
    preemptions: float = MIN_PREEMPTIONS
    faults: float = MAX_MINOR_FAULTS_PER_CALL
    phase_low: float = PHASE_SUM_RANGE[0]
    phase_high: float = PHASE_SUM_RANGE[1]

    @classmethod
    def parse(cls, text: str | None) -> Bounds:
        """``name=value,...`` over the defaults, e.g. ``spread=0.4,busy=0.2``; ValueError names a bad one.

        ``min_rounds=1000000`` flags every benchmark (``few_rounds``): what the tests use to force a flag.
        """
        if text is None or not text.strip():
            return cls()
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in names:
                raise ValueError(f"stability bound {name!r} is unknown; choose from {', '.join(names)}")
            try:
                number = int(value) if name == "min_rounds" else float(value)
            except ValueError:
                raise ValueError(f"stability bound {name}={value.strip()!r} is not a number") from None
            if not math.isfinite(number):  # a NaN bound would silently turn its check off
                raise ValueError(f"stability bound {name}={value.strip()!r} must be a finite number")
            if number < 0:
                raise ValueError(f"stability bound {name}={number} must not be negative")
            values[name] = number
        return cls(**values)


def robust_spread(times: Sequence[float]) -> float | None:
    """1.4826 x MAD / median (the estimator of ``lenet.analysis.stats.robust_cv``); None under 3 rounds."""
    if len(times) < 3:
        return None
    center = statistics.median(times)
    if center <= 0:
        return None
    return 1.4826 * statistics.median(abs(t - center) for t in times) / center


def drift(times: Sequence[float]) -> float | None:
    """median(last third) / median(first third) - 1, in the order the rounds ran; None under 6 rounds."""
    third = len(times) // 3
    if third < 2:
        return None
    first, last = statistics.median(times[:third]), statistics.median(times[-third:])
    return last / first - 1.0 if first > 0 else None


def check_rounds(times: Sequence[float], bounds: Bounds = Bounds()) -> list[Flag]:
    """``few_rounds``, ``spread`` and ``drift`` over one benchmark's round times, in the order they ran."""
    return judge_rounds(len(times), robust_spread(times), drift(times), bounds)


def judge_rounds(count: int, spread: float | None, change: float | None, bounds: Bounds = Bounds()) -> list[Flag]:
    """:func:`check_rounds` from the figures a saved run keeps (the number of rounds, their spread and drift)."""
    flags = []
    if count < bounds.min_rounds:
        flags.append(Flag("few_rounds", f"{count} rounds; spread and drift need at least {bounds.min_rounds}"))
    if spread is not None and spread > bounds.spread:
        flags.append(
            Flag("spread", f"round times spread {spread:.0%} (robust CV); quiet runs stay under {bounds.spread:.0%}")
        )
    if change is not None and abs(change) > bounds.drift:
        flags.append(
            Flag(
                "drift", f"the last third of the rounds ran {change:+.0%} against the first; bound ±{bounds.drift:.0%}"
            )
        )
    return flags


def check_state(state: RoundsState, bounds: Bounds = Bounds()) -> list[Flag]:
    """``steal``, ``busy`` and ``page_faults`` from the state over the rounds."""
    minor = state.per_call(state.own.minor_faults)
    preempted = state.per_call(state.own.involuntary_switches)
    return judge_state(
        state.sampled_seconds, state.steal_share, state.busy_share, minor, state.own.major_faults, preempted, bounds
    )


def judge_state(
    seconds: float,
    steal: float | None,
    busy: float | None,
    minor_per_call: float | None,
    major: int,
    preempted_per_call: float | None = None,
    bounds: Bounds = Bounds(),
) -> list[Flag]:
    """:func:`check_state` from the figures a saved run keeps; ``seconds`` is the span the shares cover.

    ``/proc/stat`` counts each CPU's time in ticks, so a share over a short span is uncertain by
    about one tick per CPU, 1 / (ticks per second x seconds) of the whole: a share is flagged only
    when it exceeds its bound by more than that (a 20 ms span must show 50% more than the bound).

    Other processes reach a timed call by preempting it, so ``busy`` also needs this process's
    involuntary context switches per call (``preempted_per_call``) at or above
    ``bounds.preemptions``: a call far shorter than a scheduler slice is rarely cut, and its median
    stands (the study has both kinds). Unknown (None): judged by the share alone.
    """
    flags = []
    margin = 1.0 / (TICKS_PER_SECOND * seconds) if seconds > 0 else float("inf")
    within = f" (±{margin:.0%} over {seconds:.2f} s)" if margin >= 0.02 else ""  # worth saying
    if steal is not None and steal - margin > bounds.steal:
        flags.append(
            Flag("steal", f"the hypervisor stole {steal:.0%} of the CPUs' time{within}; bound {bounds.steal:.0%}")
        )
    reached = preempted_per_call is None or preempted_per_call >= bounds.preemptions
    if busy is not None and busy - margin > bounds.busy and reached:
        cut = f", preempting {preempted_per_call:.2g} times per call" if preempted_per_call is not None else ""
        flags.append(
            Flag("busy", f"other processes used {busy:.0%} of the CPUs' time{within}{cut}; bound {bounds.busy:.0%}")
        )
    if minor_per_call is not None and minor_per_call > bounds.faults:
        flags.append(
            Flag("page_faults", f"{minor_per_call:,.0f} minor page faults per call; bound {bounds.faults:,.0f}")
        )
    elif major > 0:
        flags.append(Flag("page_faults", f"{major} major page faults during the rounds (memory read back from disk)"))
    return flags


def recheck(stability: Stability, rounds: int, bounds: Bounds = Bounds()) -> list[Flag]:
    """The per-benchmark checks again, from what a saved run keeps, under other ``bounds`` (the studies use it)."""
    major = round((stability.major_faults_per_call or 0.0) * (stability.calls or 0))
    return [
        *judge_rounds(rounds, stability.rounds_spread, stability.rounds_drift, bounds),
        *judge_state(
            stability.sampled_seconds or 0.0,
            stability.steal_share,
            stability.busy_share,
            stability.minor_faults_per_call,
            major,
            stability.involuntary_switches_per_call,
            bounds,
        ),
    ]


PhaseKey = tuple[str, int, str | None]  # variant, batch size, optimizer
STEP_PARTS = ("forward_train", "backward", "optimizer_step")


@dataclass(frozen=True)
class Timed:
    """One benchmark's median, with the case fields the phase-sum check groups by."""

    phase: str
    variant: str
    batch_size: int
    optimizer: str | None
    median: float


def check_phase_sums(benchmarks: Sequence[Timed], bounds: Bounds = Bounds()) -> dict[int, Flag]:
    """``phase_sum`` for every train step whose three phases were measured too: index -> flag.

    Time adds up: a step far slower than its phases' sum was itself disturbed, and the step is
    flagged; a step far faster means a phase was slowed, and the three phases are flagged (which
    one cannot be told). The backward and forward phases have no optimizer; they pair with every
    optimizer's step of the same variant and batch size.
    """
    parts: dict[tuple[str, str, int, str | None], int] = {}
    for index, bench in enumerate(benchmarks):
        if bench.phase in STEP_PARTS:
            optimizer = bench.optimizer if bench.phase == "optimizer_step" else None
            parts[(bench.phase, bench.variant, bench.batch_size, optimizer)] = index
    flags: dict[int, Flag] = {}
    for index, step in enumerate(benchmarks):
        if step.phase != "train_step":
            continue
        members = [
            parts.get((phase, step.variant, step.batch_size, step.optimizer if phase == "optimizer_step" else None))
            for phase in STEP_PARTS
        ]
        if None in members:
            continue
        total = sum(benchmarks[i].median for i in members if i is not None)
        ratio = step.median / total if total > 0 else float("inf")
        if bounds.phase_low <= ratio <= bounds.phase_high:
            continue
        sums = " + ".join(f"{benchmarks[i].median * 1e3:.3g}" for i in members if i is not None)
        reason = (
            f"the train step ({step.median * 1e3:.3g} ms) is {ratio:.2f}x the sum of its phases "
            f"({sums} = {total * 1e3:.3g} ms); expected {bounds.phase_low}-{bounds.phase_high}x"
        )
        for flagged in [index] if ratio > bounds.phase_high else [i for i in members if i is not None]:
            flags[flagged] = Flag("phase_sum", reason)
    return flags


def describe(flags: Sequence[Flag]) -> str:
    """Flags as one line: ``spread: ...; drift: ...``."""
    return "; ".join(f"{flag.check}: {flag.reason}" for flag in flags)


def advice_lines(checks: Iterable[str]) -> list[str]:
    """One advice line per distinct check, in CHECKS order."""
    seen = set(checks)
    return [f"{check}: {ADVICE[check]}" for check in CHECKS if check in seen]


def stability_record(
    state: RoundsState | None, times: Sequence[float], flags: Sequence[Flag], attempts: int = 1
) -> Stability:
    """What a saved run keeps of one benchmark's state and checks."""
    spread, change = robust_spread(times), drift(times)
    values: dict[str, Any] = {
        "stability_flags": tuple(flag.check for flag in flags),
        "stability_reasons": tuple(flag.reason for flag in flags),
        "stability_attempts": attempts,
        "rounds_spread": spread,
        "rounds_drift": change,
    }
    if state is not None:
        own = state.own
        values.update(
            sampled_seconds=state.sampled_seconds,
            calls=state.calls,
            cpu_per_wall=state.cpu_per_wall,
            minor_faults_per_call=state.per_call(own.minor_faults),
            major_faults_per_call=state.per_call(own.major_faults),
            voluntary_switches_per_call=state.per_call(own.voluntary_switches),
            involuntary_switches_per_call=state.per_call(own.involuntary_switches),
            load_before=state.load_before,
            load_after=state.load_after,
            steal_share=state.steal_share,
            iowait_share=state.iowait_share,
            busy_share=state.busy_share,
            cpu_governor=state.settings.governor if state.settings else None,
            cpu_boost=state.settings.boost if state.settings else None,
            state_unavailable=state.unavailable,
        )
    return Stability(**values)


def with_flags(stability: Stability, flags: Sequence[Flag]) -> Stability:
    """``stability`` with more flags (the session's phase-sum check adds to the per-benchmark ones)."""
    return dataclasses.replace(
        stability,
        stability_flags=(*stability.stability_flags, *(f.check for f in flags)),
        stability_reasons=(*stability.stability_reasons, *(f.reason for f in flags)),
    )


def summary_lines(flagged: Sequence[tuple[str, Stability]], total: int) -> list[str]:
    """The end-of-run list: each flagged benchmark (name, its stability record) with its reasons, then advice."""
    if not flagged:
        return []
    lines = [
        f"lenet-bench: {len(flagged)} of {total} benchmarks flagged unstable (marked in the saved run; "
        "the report leaves them out of speedups unless --include-unstable):"
    ]
    checks: list[str] = []
    for name, state in flagged:
        names, reasons = state.stability_flags, state.stability_reasons
        lines.append(f"  {name}: " + "; ".join(f"{c}: {r}" for c, r in zip(names, reasons, strict=False)))
        checks += names
    return [*lines, "  what to do:", *(f"    {line}" for line in advice_lines(checks))]
