"""Every option of a run, its environment twin, and the one parser that checks them all.

``pytest bench`` (through ``bench/conftest.py``), ``scripts/trace.py`` and the studies
read their options from here, so an option means the same thing, takes the same
values and fails with the same one line everywhere. Each option has an environment
variable, so a CI job or a tox call can set it without touching the command line; the
command line wins when both are given.

Every value is checked before anything runs, even one that only matters with another
option (``--profile-steps`` without ``--profile``): a typo never passes silently.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenet.stability import Bounds
from lenet.variants import PRESETS, Selection, SelectionError, build_selection

DEFAULT_PRESET = "quick"
DEFAULT_TRACE_DIR = Path("results") / "traces"
DEFAULT_PROFILE_STEPS = 3
DEFAULT_INSTRUCTION_REPEATS = 5
DEFAULT_PEAKS_DIR = Path("results") / "peaks"
TRACE_FORMATS = ("json.gz", "json")
MAX_THREADS_PER_CPU = 4  # more is oversubscription no benchmark wants (and torch crashes at ~100,000)
MAX_PROFILE_STEPS = 1000
MAX_INSTRUCTION_REPEATS = 100
MAX_RERUNS = 10  # a benchmark still unstable after this many reruns is measuring the machine, not the code


@dataclass(frozen=True)
class Option:
    """One option: its flag, environment twin, help text, and whether it is an on/off switch."""

    flag: str
    env: str
    help: str
    switch: bool = False
    group: str = "selection"

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS = (
    Option("--preset", "LENET_PRESET", f"named selection: {', '.join(PRESETS)} (default {DEFAULT_PRESET})"),
    Option("--variants", "LENET_VARIANTS", "comma-separated variant ids or globs, e.g. 'cpu-*-fp32-*'"),
    Option("--batch-sizes", "LENET_BATCH_SIZES", "comma-separated positive batch sizes, e.g. 1,64,256"),
    Option("--phases", "LENET_PHASES", "comma-separated phases (forward_inference, forward_train, backward, ...)"),
    Option("--optimizers", "LENET_OPTIMIZERS", "comma-separated optimizers: sgd, sgd_foreach, adam, adam_fused, ..."),
    Option("--threads", "LENET_THREADS", "torch.set_num_threads for the run (default: torch's choice)"),
    Option(
        "--profile",
        "LENET_PROFILE",
        "after each benchmark's timed rounds, record a torch.profiler trace and operator table",
        switch=True,
        group="profile",
    ),
    Option(
        "--trace-dir",
        "LENET_TRACE_DIR",
        f"root of the trace run folders (default {DEFAULT_TRACE_DIR})",
        group="profile",
    ),
    Option(
        "--profile-steps",
        "LENET_PROFILE_STEPS",
        f"steps recorded in each trace, after one discarded (default {DEFAULT_PROFILE_STEPS})",
        group="profile",
    ),
    Option("--trace-format", "LENET_TRACE_FORMAT", f"{' or '.join(TRACE_FORMATS)} (default json.gz)", group="profile"),
    Option(
        "--instructions",
        "LENET_INSTRUCTIONS",
        "after the run, count the instructions per call of every eager CPU case under valgrind (minutes)",
        switch=True,
        group="instructions",
    ),
    Option(
        "--instructions-compiled",
        "LENET_INSTRUCTIONS_COMPILED",
        "with --instructions, count the torch.compile variants too (compiling under valgrind takes minutes a graph)",
        switch=True,
        group="instructions",
    ),
    Option(
        "--instructions-repeats",
        "LENET_INSTRUCTIONS_REPEATS",
        f"callgrind repeats per case (default {DEFAULT_INSTRUCTION_REPEATS})",
        group="instructions",
    ),
    Option(
        "--no-metrics",
        "LENET_NO_METRICS",
        "skip the untimed metrics pass after each benchmark (peak memory, FLOPs, % of the measured peak)",
        switch=True,
        group="metrics",
    ),
    Option(
        "--compile-cost",
        "LENET_COMPILE_COST",
        "after the run, compile each compiled case cold and warm in new processes (minutes)",
        switch=True,
        group="metrics",
    ),
    Option(
        "--peaks-dir",
        "LENET_PEAKS_DIR",
        f"folder of the cached machine peaks, measured when missing (default {DEFAULT_PEAKS_DIR})",
        group="metrics",
    ),
    Option(
        "--publish-db",
        "LENET_PUBLISH_DB",
        "after the run is saved, publish it to this PostgreSQL URL (docs/database.md)",
        group="publish",
    ),
    Option(
        "--rerun-unstable",
        "LENET_RERUN_UNSTABLE",
        f"re-time a benchmark a stability check flagged up to N times (0-{MAX_RERUNS}, default 0), keeping the last",
        group="stability",
    ),
    Option(
        "--stability-bounds",
        "LENET_STABILITY_BOUNDS",
        "override the stability checks' bounds, e.g. 'spread=0.4,busy=0.2' (docs/stability.md)",
        group="stability",
    ),
)
BY_FLAG = {option.flag: option for option in OPTIONS}


@dataclass(frozen=True)
class TraceSettings:
    """What the profiling pass records. ``active`` steps are kept, after ``warmup`` discarded ones."""

    active: int = DEFAULT_PROFILE_STEPS
    warmup: int = 1
    record_shapes: bool = True
    profile_memory: bool = True
    with_flops: bool = True
    use_gzip: bool = True

    def __post_init__(self) -> None:
        if self.active < 1 or self.warmup < 0:
            raise ValueError(f"profile steps: active {self.active} must be >= 1 and warmup {self.warmup} >= 0")

    @property
    def steps(self) -> int:
        return self.warmup + self.active


@dataclass(frozen=True)
class RunOptions:
    """Every option of a run, checked. ``settings`` is None unless profiling; ``repeats`` None unless counting."""

    preset: str
    selection: Selection
    threads: int | None = None
    trace_dir: Path | None = None  # set when profiling
    trace_settings: TraceSettings | None = None
    instruction_repeats: int | None = None  # set when counting instructions
    count_compiled: bool = False  # count the torch.compile variants too
    metrics: bool = True  # the metrics pass after each benchmark
    compile_cost: bool = False  # cold and warm compiles at the run's end
    peaks_dir: Path = DEFAULT_PEAKS_DIR
    publish_db: str | None = None  # a PostgreSQL URL to publish the saved run to
    rerun_unstable: int = 0
    stability_bounds: Bounds = field(default_factory=Bounds)

    @property
    def profile(self) -> bool:
        return self.trace_settings is not None

    @property
    def count_instructions(self) -> bool:
        return self.instruction_repeats is not None

    @classmethod
    def parse(
        cls, given: Mapping[str, Any], environ: Mapping[str, str], cpu_count: int = 1, root: Path = Path(".")
    ) -> RunOptions:
        """Options from ``given`` (flag -> value or None) and their environment twins; SelectionError on bad input.

        Default folders are under ``root`` (the checkout); a folder the user names is taken as given.
        """
        text = {option.flag: resolve(option, given.get(option.flag), environ) for option in OPTIONS}
        preset = DEFAULT_PRESET if text["--preset"] is None else str(text["--preset"])
        selection = build_selection(
            preset=preset,
            variants=text["--variants"],
            batch_sizes=text["--batch-sizes"],
            phases=text["--phases"],
            optimizers=text["--optimizers"],
        )
        threads = parse_threads(text["--threads"], cpu_count)
        # Checked whether or not their switch is on: a typo never passes silently.
        settings = parse_trace_settings(text["--profile-steps"], text["--trace-format"])
        repeats = parse_positive_int(
            text["--instructions-repeats"], "instructions repeats", DEFAULT_INSTRUCTION_REPEATS, MAX_INSTRUCTION_REPEATS
        )
        trace_dir = text["--trace-dir"]
        if trace_dir is not None and not str(trace_dir).strip():
            raise SelectionError("trace dir '' is empty; name a folder, e.g. results/traces")
        profile = bool(text["--profile"])
        peaks_dir = text["--peaks-dir"]
        if peaks_dir is not None and not str(peaks_dir).strip():
            raise SelectionError("peaks dir '' is empty; name a folder, e.g. results/peaks")
        publish_db = text["--publish-db"]
        if publish_db is not None and not str(publish_db).strip().lower().startswith(("postgresql://", "postgres://")):
            raise SelectionError("publish db must be a postgresql:// URL, e.g. postgresql://bench@db.example/lenet")
        rerun = parse_reruns(text["--rerun-unstable"])
        try:
            bounds = Bounds.parse(text["--stability-bounds"])
        except ValueError as error:
            raise SelectionError(str(error)) from None
        return cls(
            preset=preset.strip(),
            selection=selection,
            threads=threads,
            trace_dir=Path(trace_dir) if trace_dir is not None else root / DEFAULT_TRACE_DIR if profile else None,
            trace_settings=settings if profile else None,
            instruction_repeats=repeats if text["--instructions"] else None,
            count_compiled=bool(text["--instructions-compiled"]),
            metrics=not text["--no-metrics"],
            compile_cost=bool(text["--compile-cost"]),
            peaks_dir=Path(peaks_dir) if peaks_dir is not None else root / DEFAULT_PEAKS_DIR,
            publish_db=str(publish_db).strip() if publish_db is not None else None,
            rerun_unstable=rerun,
            stability_bounds=bounds,
        )

    def describe(self, torch_version: str, threads: int) -> str:
        """One line saying what the run measures, for the top of its output."""
        selection = self.selection
        return (
            f"lenet-bench: preset {self.preset}; {len(selection.variants)} variants, "
            f"batch sizes {','.join(map(str, selection.batch_sizes))}, "
            f"phases {','.join(p.value for p in selection.phases)}, "
            f"optimizers {','.join(o.id for o in selection.optimizers)}; torch {torch_version}, {threads} threads"
        )


def resolve(option: Option, value: Any, environ: Mapping[str, str]) -> Any:
    """The command line's value, else the environment's (a switch's text becomes a bool), else None."""
    if option.switch:
        return bool(value) or parse_switch(environ.get(option.env), option.env)
    return value if value is not None else environ.get(option.env)


def parse_switch(text: str | None, name: str) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off (empty: off)."""
    value = (text or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SelectionError(f"{name}={text!r}: choose from 1, true, yes, on, 0, false, no, off")


def parse_positive_int(text: Any, what: str, default: int, maximum: int) -> int:
    """A whole number in 1..maximum typed in ASCII digits, or ``default`` when not given."""
    if text is None:
        return default
    value = str(text).strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= maximum:
        raise SelectionError(f"{what} {text!r} must be a whole number from 1 to {maximum}, e.g. {default}")
    return int(value)


def parse_reruns(text: Any) -> int:
    """``--rerun-unstable``: 0 (the default: never) to MAX_RERUNS."""
    if text is not None and str(text).strip() == "0":
        return 0
    try:
        return parse_positive_int(text, "rerun unstable", 0, MAX_RERUNS)
    except SelectionError:
        raise SelectionError(f"rerun unstable {text!r} must be a whole number from 0 to {MAX_RERUNS}, e.g. 2") from None


def parse_threads(text: Any, cpu_count: int) -> int | None:
    """``--threads``: None (torch's choice) or 1..MAX_THREADS_PER_CPU x the CPUs this process may use."""
    if text is None:
        return None
    return parse_positive_int(text, "threads", max(1, cpu_count), max(1, cpu_count) * MAX_THREADS_PER_CPU)


def parse_trace_settings(steps: Any = None, trace_format: Any = None) -> TraceSettings:
    """``--profile-steps`` and ``--trace-format`` -> TraceSettings, or SelectionError naming the choices."""
    active = parse_positive_int(steps, "profile steps", DEFAULT_PROFILE_STEPS, MAX_PROFILE_STEPS)
    fmt = TRACE_FORMATS[0] if trace_format is None else str(trace_format).strip()
    if fmt not in TRACE_FORMATS:
        raise SelectionError(f"trace format {trace_format!r} is unknown; choose from {', '.join(TRACE_FORMATS)}")
    return TraceSettings(active=active, use_gzip=fmt == "json.gz")


def add_to_argparse(
    parser: argparse.ArgumentParser, groups: tuple[str, ...] = ("selection", "profile"), skip: tuple[str, ...] = ()
) -> None:
    """The options of ``groups`` (less ``skip``) as argparse arguments; :meth:`RunOptions.parse` checks the text."""
    for option in OPTIONS:
        if option.group not in groups or option.flag in skip:
            continue
        action = "store_true" if option.switch else "store"
        parser.add_argument(option.flag, action=action, default=None, help=f"{option.help} [env {option.env}]")


def given_from_namespace(namespace: argparse.Namespace) -> dict[str, Any]:
    """flag -> value for every option an argparse namespace has."""
    return {option.flag: getattr(namespace, option.dest) for option in OPTIONS if hasattr(namespace, option.dest)}


def parse_or_usage_error(
    parser: argparse.ArgumentParser, given: Mapping[str, Any], environ: Mapping[str, str], cpu_count: int
) -> RunOptions:
    """:meth:`RunOptions.parse`, with bad input reported as the parser's one-line usage error (exit 2)."""
    try:
        return RunOptions.parse(given, environ, cpu_count)
    except SelectionError as error:
        parser.error(str(error))
