"""Instruction counts under valgrind's callgrind: a measure the noise of a shared machine cannot blur.

Wall time on a shared machine varies between processes by far more than the number of
instructions a call executes does (both measured in ``results/studies/gate_study*.md`` and
``results/studies/instruction_spread.md``). This module
counts the instructions of exactly the callable a benchmark times (one phase, one
variant, one batch size), on one thread, after warm-up (and compilation), without its
untimed set-up, in one valgrind process for many cases.

How: the parent runs ``valgrind --tool=callgrind --collect-atstart=no --instr-atstart=no python -m
lenet.instructions SPEC``. Callgrind then runs the child uninstrumented, several times faster, while
it imports torch and builds and warms up each case; the child switches instrumentation on for the
case's counted calls only, with callgrind's client requests (``lenet.callgrind``, which also names
the dump-numbering bug this design avoids). For each repeat it runs ``calls`` rounds as ``setup();
toggle collection on; target(); toggle off`` and dumps the counters (``torch._C._valgrind_toggle``
and ``_valgrind_toggle_and_dump_stats``, the hooks torch.utils.benchmark's ``Timer.collect_callgrind``
uses; that API cannot leave a per-round set-up out, nor share one valgrind process between
benchmarks). The parent reads the total of each dump the child found it wrote. Where the client
requests cannot be built (no C compiler or no ``valgrind/callgrind.h``), callgrind instruments from
the start, as torch's own API does: slower, same counts (``results/studies/count_toggling.md``).
Counts see CPU work only: not GPU time, memory stalls, contention or frequency.

Valgrind emulates an x86-64 CPU up to AVX2. Under it, ATen and oneDNN choose their AVX2
kernels, and Inductor is told to compile AVX2 code (``cpp.march = x86-64-v3``,
``simdlen = 256``), so on an AVX-512 machine the counted code is not the timed code:
counts compare versions of the code, not this CPU's instruction mix.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lenet import callgrind
from lenet.harness import WarmupSettings, prepared
from lenet.runs.record import InstructionInfo
from lenet.source import REPO, child_environment
from lenet.variants import Case

if TYPE_CHECKING:
    from lenet.workload import TimedCall

DEFAULT_REPEATS = 5
DEFAULT_CALLS = 1  # at least this many rounds per repeat
# ...and about this many instructions per repeat (a few seconds under valgrind): short calls get more rounds.
# Sized from a counted probe call, not from a clock, so that both sides of a comparison count the same
# schedule of calls whatever the load: the count per call drifts over a case's first calls (CPython
# specializes its bytecode as it runs), so a different number of calls would be a different count.
REPEAT_INSTRUCTIONS = 50_000_000
MAX_CALLS = 200
# Time limits, about 5x what a 2-core VM needed for each step (results/studies/run_costs.md,
# "Instruction counting under valgrind").
START_SECONDS = 600.0
EAGER_CASE_SECONDS = 180.0
COMPILED_CASE_SECONDS = 900.0
# A shared machine slows valgrind by its load (an eager count that took 70 s alone took about 10 minutes at a
# 1-minute load of 9-17 on 2 CPUs, past a fixed limit): the limit grows with the load per CPU when counting
# starts, up to this many times, so that a hung valgrind is still stopped within the hour.
MAX_LOAD_FACTOR = 4.0
# Short: every call under valgrind is tens of times slower, and a bf16 call counts hundreds of millions of
# instructions. Two calls warm an eager case (its one-time set-up runs in the first); counts of processes
# warmed so agree to a few parts per million (results/studies/count_verdict.md). Compiled cases warm up until
# compilation settles, as when timed. Eager cases skip dynamo's compile counter (harness).
UNDER_VALGRIND = WarmupSettings(min_calls=2, settle_calls=1, min_seconds=0.0)
UNDER_VALGRIND_COMPILED = WarmupSettings(min_calls=3, settle_calls=2, min_seconds=0.0)
_TOTAL = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)
# A dump's total at or above 2**63 is a negative difference read as unsigned: never a count (lenet.callgrind).
NEGATIVE = 1 << 63


@dataclass(frozen=True)
class InstructionCount:
    """Instructions per call, one value per repeat."""

    per_repeat: tuple[float, ...]
    calls: int = 1  # rounds counted per repeat

    @property
    def median(self) -> float:
        return statistics.median(self.per_repeat)

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats: 0.0004 means 0.04%."""
        return (max(self.per_repeat) - min(self.per_repeat)) / self.median if self.median else 0.0

    def info(self) -> InstructionInfo:
        """The record's instruction fields."""
        return InstructionInfo(
            instructions=self.median,
            instructions_spread=self.spread,
            instructions_repeats=self.per_repeat,
            instructions_calls_per_repeat=self.calls,
        )


class InstructionCounting:
    """The CPU cases of a run that get instruction counts, counted together when the run ends.

    :meth:`finish` gives each case's count, or the reason there is none, for the session to put into
    the case's record: the timings are saved either way.
    """

    def __init__(self, repeats: int, compiled: bool = False) -> None:
        self.repeats = repeats
        self.compiled = compiled  # count torch.compile variants too (minutes a graph under valgrind)
        self.pending: list[Case] = []
        self.unavailable: dict[Case, InstructionInfo] = {}  # cases that are not counted, and why
        self.counted: dict[Case, InstructionInfo] = {}  # each pending case's count (or why none), once known
        self.seconds: float | None = None  # set once counting ran

    def add(self, case: Case) -> None:
        reason = unavailable_reason(case.variant.device)
        if reason is None and case.variant.is_compiled and not self.compiled:
            reason = "compiled variants are counted only with --instructions-compiled (minutes a graph under valgrind)"
        if reason:
            self.unavailable[case] = InstructionInfo.unavailable(reason)
        else:
            self.pending.append(case)

    def finish(self, stopped_early: bool) -> dict[Case, InstructionInfo]:
        """At the end of the run: count, unless it stopped early (Ctrl-C, -x): then the user wants out,
        not minutes of valgrind, and every case records why it has no count. Each case's count, by case."""
        if stopped_early:
            return {**self.unavailable, **self.record({}, "the session stopped early, so nothing was counted")}
        return {**self.unavailable, **self.count()}

    def count(self) -> dict[Case, InstructionInfo]:
        """Count every pending case under valgrind: each case's count, or why there is none."""
        if not self.pending:
            return {}
        start = time.perf_counter()
        missing = "no count came back"
        try:
            results = count(list(self.pending), repeats=self.repeats)
        except Exception as error:  # noqa: BLE001 - counting must never cost the run its timings
            results, missing = {}, f"counting failed: {type(error).__name__}: {error}".splitlines()[0]
        self.seconds = time.perf_counter() - start
        return self.record(results, missing)

    def record(self, results: Mapping[str, InstructionCount | str], missing: str) -> dict[Case, InstructionInfo]:
        """Each pending case's count from ``results``, or ``missing`` as the reason."""
        for case in self.pending:
            result = results.get(case.name, missing)
            self.counted[case] = InstructionInfo.unavailable(result) if isinstance(result, str) else result.info()
        return dict(self.counted)

    def summary(self) -> list[str]:
        """Lines for the end of the run: how long counting took and each case's count."""
        if not self.pending:
            return []
        lines = []
        if self.seconds is not None:
            lines.append(
                f"lenet-bench: instructions counted for {len(self.pending)} case(s) in {self.seconds:.0f} s "
                f"({self.repeats} repeats each, one thread, under valgrind)"
            )
        for case in self.pending:
            info = self.counted.get(case, InstructionInfo.unavailable("not counted"))
            if info.instructions is not None:
                lines.append(
                    f"  {case.name}: {info.instructions:,.0f} instructions per call "
                    f"(spread {info.instructions_spread or 0:.3%})"
                )
            else:
                lines.append(f"  {case.name}: no count: {info.instructions_unavailable}")
        return lines


def unavailable_reason(device: str = "cpu") -> str | None:
    """Why counts cannot be taken here for a case on ``device``, or None."""
    if device != "cpu":
        return f"instruction counts measure CPU code only; a {device} variant's time is spent on the device"
    if platform.system() != "Linux":
        return f"valgrind's callgrind needs Linux; this is {platform.system()}"
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    import torch

    if not torch._C._valgrind_supported_platform():
        return "this torch build has no valgrind support"
    return None


def counted_case(case: Case) -> dict[str, object]:
    """A case as the counting child reads it: its spec, and its name as the key of its count."""
    return {"id": case.name, **case.spec()}


def count(
    cases: Sequence[Case],
    repeats: int = DEFAULT_REPEATS,
    calls: int = DEFAULT_CALLS,
    workers: int | None = None,
    timeout: float | None = None,
    late: bool = True,
) -> dict[str, InstructionCount | str]:
    """Count every case: case key -> counts, or a one-line error.

    The cases are dealt out among ``workers`` valgrind processes (default: one
    per CPU of the machine) running side by side: counts do not depend on the load, and
    each process pays the import of torch under valgrind once. A run pinned to one CPU
    (``ab.py --pin``) still counts on every CPU: its timed rounds are over by then.
    ``late``: instrument only the counted calls (the module's docstring); False instruments the
    whole process from the start, as torch's ``collect_callgrind`` does (for the count studies).
    """
    if not cases:
        return {}
    groups = deal(cases, max(1, min(workers or environment_workers() or os.cpu_count() or 1, len(cases))))
    limit = timeout if timeout is not None else time_limit(groups)
    deadline = time.monotonic() + limit
    with tempfile.TemporaryDirectory(prefix="lenet-callgrind-") as tmp:
        folders = [Path(tmp) / f"worker{index}" for index in range(len(groups))]
        requests = callgrind.build(Path(tmp))[0] if late else None  # None: instrument from the start
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for group, folder in zip(groups, folders, strict=True):
                processes.append(_start(group, folder, Schedule(repeats, calls, requests)))
            results: dict[str, InstructionCount | str] = {}
            for group, folder, process in zip(groups, folders, processes, strict=True):
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                    error = _death(process.returncode, folder / "log.txt") if process.returncode != 0 else None
                except subprocess.TimeoutExpired:
                    _stop(process)
                    error = f"valgrind ran past the time limit of {limit:.0f} s for this run's counts"
                manifest = folder / "manifest.json"
                done = read_counts(json.loads(manifest.read_text()), folder) if manifest.is_file() else {}
                results.update(done)
                if error is not None:  # the cases it had not finished get the reason
                    results.update({c.name: error for c in group if c.name not in done})
            return results
        finally:  # interrupted or failed: no valgrind may outlive the folder it writes into
            for process in processes:
                _stop(process)


def environment_workers() -> int | None:
    """``LENET_INSTRUCTIONS_WORKERS``: valgrind processes per counting run, for runs that count side by side
    (ab.py sets it, so that its counted processes together start one valgrind a CPU). An environment
    variable, not an option: a tree from before it ignores it rather than refusing to run."""
    text = os.environ.get(callgrind.WORKERS_VARIABLE, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{callgrind.WORKERS_VARIABLE}={text!r}: expected a whole number of 1 or more")
    return int(text)


def time_limit(groups: Sequence[Sequence[Case]], load: float | None = None) -> float:
    """Seconds after which a hung valgrind is stopped: generous for the slowest worker's share, times
    :func:`load_factor` (``load``: the 1-minute load average, read from the machine when None)."""
    idle = START_SECONDS + max(
        sum(COMPILED_CASE_SECONDS if case.variant.is_compiled else EAGER_CASE_SECONDS for case in group)
        for group in groups
    )
    return idle * load_factor(load)


def load_factor(load: float | None = None) -> float:
    """The load average per CPU, between 1 (an idle or a merely busy machine) and ``MAX_LOAD_FACTOR``."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not every platform has a load average
            return 1.0
    return min(MAX_LOAD_FACTOR, max(1.0, load / (os.cpu_count() or 1)))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def deal(cases: Sequence[Case], workers: int) -> list[list[Case]]:
    """Share the cases among ``workers`` processes, compiled ones first and evenly.

    Compiling under valgrind takes minutes per graph and an eager case seconds, so the
    compiled cases, not the case count, decide when the last worker finishes.
    """
    ordered = sorted(cases, key=lambda case: not case.variant.is_compiled)
    return [ordered[index::workers] for index in range(workers)]


def _death(status: int, log: Path) -> str:
    if status == -4:  # SIGILL
        return "valgrind stopped at an instruction it cannot run (SIGILL), e.g. AVX-512 in code compiled for this CPU"
    tail = log.read_text(errors="replace").strip().splitlines()[-2:] if log.is_file() else []
    return f"valgrind exited {status} before this case was counted: {' | '.join(tail)}"


@dataclass(frozen=True)
class Schedule:
    """What each counting process does: ``repeats`` dumps of at least ``calls`` rounds per case, and
    ``requests``, the compiled client requests that switch instrumentation (None: instrument throughout)."""

    repeats: int
    calls: int
    requests: Path | None = None


def _start(cases: Sequence[Case], folder: Path, schedule: Schedule) -> subprocess.Popen[bytes]:
    """Start one valgrind process that counts ``cases``; its dumps and manifest land in ``folder``."""
    folder.mkdir(parents=True)
    spec = folder / "spec.json"
    requests = str(schedule.requests) if schedule.requests else None
    document = {"cases": [counted_case(c) for c in cases], "repeats": schedule.repeats, "calls": schedule.calls}
    spec.write_text(json.dumps({**document, "requests": requests}))
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--instr-atstart={'no' if requests else 'yes'}",
        f"--callgrind-out-file={folder}/callgrind.%p",
        sys.executable,
        "-m",
        "lenet.instructions",
        str(spec),
        str(folder / "manifest.json"),
    ]
    # One thread, a fixed hash seed: the same code executes the same instructions. This checkout's
    # lenet first on the path: the counter must run the code that was timed, not an installed copy.
    env = {**child_environment(os.environ), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    # Output goes to a file: a pipe nobody reads while another worker is waited for could fill up.
    with open(folder / "log.txt", "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_every_cpu)


def _every_cpu() -> None:
    """In the valgrind child, before exec: run on any CPU of the machine, whatever the parent was pinned to."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or a CPU offline: keep the affinity
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def read_counts(manifest: dict, folder: Path) -> dict[str, InstructionCount | str]:
    """Turn the child's manifest and callgrind's numbered dumps into counts per call."""
    tree = manifest.get("tree")
    if tree is not None and tree != str(REPO):  # it counted another checkout's code: no count is this run's
        why = f"the counting process imported lenet from {tree}, not from {REPO}"
        return {entry["id"]: why for entry in manifest["cases"]}
    totals = {number: _total(path) for number, path in _numbered_dumps(folder).items()}
    results: dict[str, InstructionCount | str] = {}
    for entry in manifest["cases"]:
        if "error" in entry:
            results[entry["id"]] = entry["error"]
            continue
        repeats = [group if isinstance(group, list) else [group] for group in entry["dumps"]]  # a repeat's dumps
        indices = [index for group in repeats for index in group]
        if not set(indices) <= set(totals):
            results[entry["id"]] = f"callgrind wrote {len(totals)} dumps, not the numbers {indices} the manifest names"
            continue
        found = [totals[i] for i in indices]
        if None in found:
            results[entry["id"]] = "a callgrind dump of this case has no total (cut short?)"
            continue
        if any(total >= NEGATIVE for total in found):  # type: ignore[operator]
            results[entry["id"]] = "a callgrind dump of this case is negative (it straddles an instrumentation switch)"
            continue
        per_repeat = tuple(sum(totals[i] for i in group) / entry["calls"] for group in repeats)  # type: ignore[misc]
        results[entry["id"]] = InstructionCount(per_repeat, entry["calls"])
    return results


def _numbered_dumps(folder: Path) -> dict[int, Path]:
    """callgrind's numbered dumps in ``folder`` (``callgrind.<pid>.<n>``) by their number; the file it
    writes when the process ends carries no number and no count (collection is off by then)."""
    return {int(p.suffix[1:]): p for p in folder.glob("callgrind.*.*") if p.suffix[1:].isdigit()}


def _last_dump(folder: Path) -> int:
    """The number of the dump just written: dumps are found, never predicted (see lenet.callgrind)."""
    return max(_numbered_dumps(folder), default=0)


def _total(dump: Path) -> int | None:
    match = _TOTAL.search(dump.read_bytes())
    return int(match.group(1)) if match else None


def compile_for_valgrind(cpp: Any) -> None:
    """Have Inductor (its ``config.cpp``) compile code valgrind can run.

    Valgrind runs x86-64 up to AVX2: under it ATen and oneDNN pick their AVX2 kernels by themselves,
    but Inductor compiles for the host (-march=native: AVX-512 on an AVX-512 host), which valgrind
    cannot run (SIGILL). So compiled variants are counted in AVX2 code. torch 2.12 has no
    ``cpp.march`` (setting it raised, and the counting process died before its first case): there
    only the vector width is set, and a compiled case that still uses AVX-512 dies with SIGILL,
    which its count names.
    """
    if hasattr(cpp, "march"):
        cpp.march = "x86-64-v3"
    cpp.simdlen = 256


def _child(spec_path: Path, manifest_path: Path) -> None:
    """Runs under valgrind: warm each case up, then count ``calls`` rounds per repeat."""
    import torch

    torch.set_num_threads(1)
    spec = json.loads(spec_path.read_text())
    if any(_compiled(case) for case in spec["cases"]):  # Inductor's config imports dynamo: seconds, natively
        import torch._inductor.config as inductor_config

        compile_for_valgrind(inductor_config.cpp)
    requests = callgrind.ClientRequests(Path(spec["requests"])) if spec.get("requests") else None
    entries = []
    for case in spec["cases"]:
        try:
            counted = Case.from_spec(case)
            # No gate: the timed run already checked the variant, and under valgrind it costs minutes.
            warmup = UNDER_VALGRIND_COMPILED if counted.variant.is_compiled else UNDER_VALGRIND
            with prepared(counted, gate=False, warmup=warmup) as ready, _instrumented(requests):
                entries.append({"id": case["id"], **_count_case(ready.call, spec, manifest_path.parent)})
        except Exception as error:  # noqa: BLE001 - one failing case must not lose the others' counts
            entries.append({"id": case["id"], "error": f"{type(error).__name__}: {error}".splitlines()[0]})
        # After every case (atomically): if valgrind dies on a later one, the counts so far survive.
        partial = manifest_path.with_suffix(".tmp")
        partial.write_text(json.dumps({"tree": str(REPO), "cases": entries}))
        os.replace(partial, manifest_path)


def _compiled(case: dict[str, Any]) -> bool:
    try:
        return Case.from_spec(case).variant.is_compiled
    except Exception:  # noqa: BLE001 - a case that cannot be read fails on its own, below
        return False


@contextlib.contextmanager
def _instrumented(requests: callgrind.ClientRequests | None) -> Iterator[None]:
    """Instrumentation on for the counted calls of one case (built and warmed up without it), then off."""
    if requests is None:  # instrumented from the start
        yield
        return
    requests.instrument(True)
    try:
        yield
    finally:
        requests.instrument(False)


def _count_case(call: TimedCall, spec: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """A probe call sizes the repeats, then ``spec["repeats"]`` repeats: the manifest's entry for the case.

    The probe is the first call of the first repeat, whose count is the probe's dump and one more
    (``"dumps": [[probe, rest], next, ...]``): a call of a large case counts as long under callgrind as
    the rest of its repeat, and the schedule of calls is the same on both sides of a comparison.
    """
    # Enough rounds per repeat that each repeat counts a similar, large amount of work:
    # a short call's allocator and interpreter jitter then averages out.
    _count_repeat(call, 1)  # the probe: one counted call, dumped and read here
    probe_dump = _last_dump(folder)
    probe = _total(_numbered_dumps(folder)[probe_dump])
    if probe is None or probe >= NEGATIVE:
        raise RuntimeError(f"the probe's dump holds no count ({probe}): callgrind's dumps are not as expected")
    calls = max(spec["calls"], min(MAX_CALLS, math.ceil(REPEAT_INSTRUCTIONS / max(probe, 1))))
    first: list[int] = [probe_dump]
    if calls > 1:
        _count_repeat(call, calls - 1)
        first.append(_last_dump(folder))
    indices: list[int | list[int]] = [first]
    for _ in range(spec["repeats"] - 1):
        _count_repeat(call, calls)  # each repeat ends in exactly one dump, even when a round fails
        indices.append(_last_dump(folder))
    return {"dumps": indices, "calls": calls}


def _count_repeat(call: TimedCall, calls: int) -> None:
    """One repeat: ``calls`` rounds of untimed set-up then counted target, written as one callgrind dump.

    Whatever happens, the repeat ends in one dump and with collection off, so a failing
    round cannot leak its counts, or a collection left on, into the next case.
    """
    import gc

    import torch

    toggle, toggle_and_dump = torch._C._valgrind_toggle, torch._C._valgrind_toggle_and_dump_stats
    gc.collect()  # a collection inside a counted round would add its work to one repeat only
    gc.disable()
    collecting = False
    try:
        for index in range(calls):
            arguments = call.arguments()  # untimed set-up: not counted
            toggle()  # collection on
            collecting = True
            call.target(*arguments)
            if index < calls - 1:
                toggle()  # off
                collecting = False
    finally:
        if not collecting:  # a round failed outside the counted call: on again, so the dump turns it off
            toggle()
        toggle_and_dump()  # off, and write this repeat's counts
        gc.enable()


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
    # Out without Python's finalization: tearing torch's modules down under valgrind costs each counted process
    # seconds (results/studies/test_suite_speed.md), and nothing is left to write (the manifest is written whole
    # after each case; callgrind writes its own last file when the process exits, however it exits).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
