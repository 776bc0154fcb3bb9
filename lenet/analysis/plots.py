"""DataFrames -> matplotlib Figures. Presentation only: nothing here writes a file.

Every plot stays readable in black-and-white print: series differ by marker,
line style or hatch as well as by colour. Titles name the machine, torch version
and batch size; axes name their unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import cycle

import matplotlib

matplotlib.use("Agg")  # no display needed, ever
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: smaller files, drawn faster

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import cbook  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lenet.analysis.changes import COUNTS, TIME, Change  # noqa: E402
from lenet.analysis.formatting import time_unit  # noqa: E402
from lenet.analysis.operators import SEGMENTS, step_timeline  # noqa: E402
from lenet.analysis.summary import VARIANT_ORDER  # noqa: E402
from lenet.analysis.trace_load import Trace, TraceError  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")
HATCHES = ("", "///", "\\\\\\", "xxx", "...", "+++", "ooo", "---")
COLORS = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
BREAKDOWN_PHASES = ("forward_train", "backward", "optimizer_step")
DENSE_HISTORY = 40  # above this many runs a series' spread is drawn as a band, not whiskers


def _series_names(rows: pd.DataFrame) -> pd.Series:
    """'variant (optimizer)' for the phases that step, else the variant: one name per row."""
    optimizer = rows["optimizer"].astype(object)
    with_optimizer = rows["label"].astype(str) + " (" + optimizer.astype(str) + ")"
    return with_optimizer.where(optimizer.notna() & (optimizer.astype(str) != ""), rows["label"].astype(str))


def _context(rows: pd.DataFrame) -> str:
    label = str(rows["machine_label"].iloc[0])
    return label if "torch" in label else f"{label}, torch {rows['torch_version'].iloc[0]}"


def main_optimizer(rows: pd.DataFrame) -> str | None:
    """The optimizer a figure shows for the phases that step: sgd if measured, else the first by name."""
    optimizers = sorted(set(rows["optimizer"].dropna()))
    if not optimizers:
        return None
    return "sgd" if "sgd" in optimizers else optimizers[0]


def _one_optimizer(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of phases without an optimizer, and of the main optimizer for the phases that step.

    The tables hold every optimizer; a figure with one row per variant stays readable.
    """
    optimizer = main_optimizer(rows)
    if optimizer is None:
        return rows
    return rows[rows["optimizer"].isna() | (rows["optimizer"] == optimizer)]


def _in_variant_order(rows: pd.DataFrame) -> pd.DataFrame:
    order = rows["label"].map(lambda v: VARIANT_ORDER.get(v, len(VARIANT_ORDER)))
    return rows.assign(_order=order).sort_values(["_order", "label"], kind="stable").drop(columns="_order")


def speedup_figure(rows: pd.DataFrame) -> Figure | None:
    """Speedup per variant with interval whiskers: one panel per phase, for one machine, device and batch."""
    rows = _one_optimizer(rows[rows["speedup"].notna()])
    if rows.empty:
        return None
    phases = list(dict.fromkeys(rows["phase"]))
    names = list(dict.fromkeys(rows["label"]))
    fig, axes = plt.subplots(1, len(phases), figsize=(3.4 * len(phases) + 2.5, 0.42 * len(names) + 1.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, phase, marker in zip(axes, phases, cycle(MARKERS), strict=False):
        part = rows[rows["phase"] == phase]
        y = [names.index(label) for label in part["label"]]
        x = part["speedup"].astype(float).to_numpy()
        low = part["speedup_low"].astype(float).fillna(part["speedup"].astype(float)).to_numpy()
        high = part["speedup_high"].astype(float).fillna(part["speedup"].astype(float)).to_numpy()
        ax.errorbar(x, y, xerr=[x - low, high - x], fmt=marker, color="black", ecolor="0.35", capsize=3)
        ax.axvline(1.0, color="0.5", linestyle="--", linewidth=1)
        optimizer = part["optimizer"].dropna()
        ax.set_title(f"{phase} ({optimizer.iloc[0]})" if not optimizer.empty else phase, fontsize=10)
        ax.set_xlabel("speedup (×)")
        ax.grid(axis="x", color="0.9")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    first = rows.iloc[0]
    fig.suptitle(
        f"Speedup vs {first['reference']} (95% CI), batch {first['batch_size']}\n{_context(rows)}", fontsize=10
    )
    fig.tight_layout()
    return fig


def _first(row: pd.Series, *columns: str) -> float:
    """The first of these statistics the run saved (a file may lack any of them but the median)."""
    return next(float(row[c]) for c in columns if pd.notna(row[c]))


def latency_figure(rows: pd.DataFrame) -> Figure | None:
    """Latency distribution per variant (one machine, device, phase, batch): boxes from per-round
    data when saved, else drawn from the saved quartiles and 1.5-IQR whisker ends."""
    rows = _in_variant_order(_one_optimizer(rows))
    if rows.empty:
        return None
    unit, scale = time_unit(rows["median"].astype(float).tolist())
    stats, sources = [], set()
    for (_, row), name in zip(rows.iterrows(), _series_names(rows), strict=True):
        if isinstance(row["data"], tuple) and len(row["data"]) > 0:
            [box] = cbook.boxplot_stats(np.asarray(row["data"], dtype=float) * scale, labels=[name])
            sources.add("per-round data")
        else:
            box = {
                "label": name,
                "med": row["median"] * scale,
                "q1": _first(row, "q1", "median") * scale,
                "q3": _first(row, "q3", "median") * scale,
                "whislo": _first(row, "ld15iqr", "min", "q1", "median") * scale,
                "whishi": _first(row, "hd15iqr", "max", "q3", "median") * scale,
                "fliers": [],
            }
            sources.add("saved quartiles")
        stats.append(box)
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * len(stats) + 1.8))
    ax.bxp(
        stats,
        orientation="horizontal",
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "0.85", "edgecolor": "black"},
        medianprops={"color": "black"},
    )
    first = rows.iloc[0]
    title = (
        f"{first['device']} · {first['phase']} · batch {first['batch_size']}: latency "
        f"({' and '.join(sorted(sources))})\n{_context(rows)}"
    )
    return _finish_bars(fig, ax, f"time per call ({unit})", title)


def throughput_figure(rows: pd.DataFrame) -> Figure | None:
    """Samples/s against batch size, a line per variant (one machine, device, phase)."""
    rows = _in_variant_order(_one_optimizer(rows[rows["samples_per_s"].notna()]))
    if rows.empty or rows["batch_size"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(11, 5))
    styles = zip(cycle(MARKERS), cycle(LINESTYLES), cycle(COLORS), strict=False)
    for (name, series), (marker, style, color) in zip(
        rows.groupby(_series_names(rows), sort=False), styles, strict=False
    ):
        series = series.sort_values("batch_size")
        ax.plot(
            series["batch_size"].astype(int),
            series["samples_per_s"],
            marker=marker,
            linestyle=style,
            color=color,
            label=name,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted(rows["batch_size"].astype(int).unique())
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (samples/s, log scale)")
    ax.grid(color="0.9", which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    first = rows.iloc[0]
    fig.suptitle(f"{first['device']} · {first['phase']}: throughput vs batch size\n{_context(rows)}", fontsize=10)
    fig.tight_layout()
    return fig


def phase_breakdown_figure(rows: pd.DataFrame) -> Figure | None:
    """Forward / backward / optimizer time stacked per variant, with the measured whole step marked."""
    parts = rows[rows["phase"].isin((*BREAKDOWN_PHASES, "train_step"))]
    if parts.empty or not set(BREAKDOWN_PHASES) & set(parts["phase"]):
        return None
    optimizer = main_optimizer(parts)
    labels = list(dict.fromkeys(_in_variant_order(parts)["label"]))
    unit, scale = time_unit(parts["median"].astype(float).tolist())

    def median_of(label: str, phase: str) -> float:
        chosen = parts[(parts["label"] == label) & (parts["phase"] == phase)]
        if phase in ("optimizer_step", "train_step") and optimizer is not None:
            chosen = chosen[chosen["optimizer"] == optimizer]
        return float(chosen["median"].iloc[0]) * scale if not chosen.empty else 0.0

    fig, ax = plt.subplots(figsize=(9.5, 0.5 * len(labels) + 1.8))
    left = np.zeros(len(labels))
    for phase, hatch, color in zip(BREAKDOWN_PHASES, HATCHES[1:], ("0.95", "0.75", "0.55"), strict=False):
        widths = np.array([median_of(label, phase) for label in labels])
        ax.barh(labels, widths, left=left, hatch=hatch, color=color, edgecolor="black", label=phase)
        left += widths
    steps = [median_of(label, "train_step") for label in labels]
    if any(steps):
        ax.scatter(steps, labels, marker="D", color="black", zorder=3, label="train_step (measured)")
    ax.legend(fontsize=8, loc="lower right")
    first = parts.iloc[0]
    title = (
        f"{first['device']} · batch {first['batch_size']}: time per phase"
        f"{f' ({optimizer})' if optimizer else ''}\n{_context(parts)}"
    )
    return _finish_bars(fig, ax, f"median time ({unit})", title)


def _finish_bars(fig: Figure, ax: Axes, xlabel: str, title: str) -> Figure:
    """A horizontal bar or box chart's finish: the first row on top, the time axis labelled and gridded, the title."""
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="0.9")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def history_figure(
    rows: pd.DataFrame, metric: str = "median", by: str = "time", changes: Sequence[Change] = ()
) -> Figure | None:
    """A metric over saved runs (by run time or commit order), IQR whiskers, a line per variant.

    By time, runs whose time is unknown are left out (they have no place on the axis). ``changes``:
    steps found in these histories (:mod:`lenet.analysis.changes`), each marked where it starts."""
    rows = rows[rows[metric].notna() & (rows["run_time"].notna() if by == "time" else True)]
    rows = _one_optimizer(rows)
    runs_per_label = rows.groupby("label")["source"].nunique()
    rows = rows[rows["label"].isin(runs_per_label[runs_per_label >= 2].index)]
    if rows.empty:
        return None  # no benchmark was measured in two runs: there is no history to draw
    rows = _in_variant_order(rows)
    is_time = metric in ("median", "mean", "min", "max")
    unit, scale = time_unit(rows[metric].astype(float).tolist()) if is_time else ("", 1.0)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    commits = list(dict.fromkeys(rows.sort_values("run_time")["commit"].astype(str)))
    styles = zip(cycle(MARKERS), cycle(LINESTYLES), cycle(COLORS), strict=False)
    for (name, series), (marker, style, color) in zip(
        rows.groupby(_series_names(rows), sort=False), styles, strict=False
    ):
        series = series.sort_values("run_time")
        x = series["run_time"] if by == "time" else series["commit"].astype(str).map(commits.index)
        y = series[metric].astype(float) * scale
        spread = is_time and metric == "median"
        if len(series) <= DENSE_HISTORY:
            yerr = (
                [(series["median"] - series["q1"]) * scale, (series["q3"] - series["median"]) * scale]
                if spread
                else None
            )
            ax.errorbar(x, y, yerr=yerr, marker=marker, linestyle=style, color=color, capsize=3, label=name)
        else:  # many runs: the IQR as a band, which stays readable and draws fast
            ax.plot(x, y, linestyle=style, color=color, label=name, linewidth=1)
            if spread:
                ax.fill_between(x, series["q1"] * scale, series["q3"] * scale, color=color, alpha=0.2, linewidth=0)
    _mark_changes(ax, rows, changes, commits, by)
    if by != "time":
        ax.set_xticks(range(len(commits)), [c[:8] for c in commits], rotation=30)
        ax.set_xlabel("commit")
    else:
        ax.set_xlabel("run time (UTC)")
        fig.autofmt_xdate()
    ax.set_ylabel(f"{metric} ({unit})" if unit else f"{metric} per call")
    ax.grid(color="0.9")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    first = rows.iloc[0]
    runs = rows["source"].nunique()
    if metric != "median":
        shown = metric
    else:
        shown = "whiskers: IQR" if rows.groupby("label").size().max() <= DENSE_HISTORY else "bands: IQR"
    fig.suptitle(
        f"History: {first['device']} · {first['phase']} · batch {first['batch_size']} "
        f"({runs} runs; {shown})\n{_context(rows)}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _mark_changes(ax: Axes, rows: pd.DataFrame, changes: Sequence[Change], commits: list[str], by: str) -> None:
    """A dotted line where each step starts (between its last commit before and first after), with its size."""
    for number, change in enumerate(changes):
        after = rows.loc[rows["commit"].astype(str) == change.after, "run_time"]
        if by == "time":
            if after.empty:
                continue
            x = after.min()
        elif change.after in commits:
            x = commits.index(change.after) - 0.5  # between the two commits
        else:
            continue
        label = "step found (changes.py)" if number == 0 else None
        ax.axvline(x, color="tab:red", linestyle=":", linewidth=1.5, label=label)
        text = f"{change.ratio - 1:+.1%} {change.benchmark.rsplit('[', 1)[-1].rstrip(']')}"
        ax.annotate(
            text,
            (x, 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="tab:red",
        )


def history_changes(changes: Sequence[Change], machine: str, rows: pd.DataFrame, metric: str) -> tuple[Change, ...]:
    """The steps of ``machine``'s histories of ``metric`` whose benchmark is among ``rows``."""
    names = set(rows["fullname"].dropna().astype(str)) if "fullname" in rows.columns else set()
    names |= set(rows["name"].dropna().astype(str)) if "name" in rows.columns else set()
    return tuple(c for c in changes if c.machine == machine and c.metric == metric and c.benchmark in names)


FAMILY_STYLE = {  # family -> (grey level, hatch): tells the families apart in black-and-white print
    "convolution": ("0.25", ""),
    "linear": ("0.55", "///"),
    "pooling": ("0.85", "xxx"),
    "relu": ("0.95", "..."),
    "loss": ("0.7", "\\\\\\"),
    "optimizer": ("0.4", "+++"),
    "compiled": ("0.6", "ooo"),
    "other": ("1.0", ""),
}


def timeline_figure(events: pd.DataFrame, title: str = "", step_ms: float | None = None) -> Figure | None:
    """One profiler step over time: a row per part of the step (forward, backward, optimizer, ...),
    a bar per top-level operator, shaded by operator family. Gaps are time outside operators
    (Python, the framework, the profiler itself)."""
    if events.empty:
        return None
    segments = [s for s in SEGMENTS if s in set(events["segment"])]
    segments += sorted(set(events["segment"]) - set(segments))
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(segments) + 2.2))
    families = [f for f in FAMILY_STYLE if f in set(events["family"])]
    for row, segment in enumerate(segments):
        part = events[events["segment"] == segment]
        for name in families:
            bars = part[part["family"] == name]
            if bars.empty:
                continue
            grey, hatch = FAMILY_STYLE[name]
            ax.broken_barh(
                list(zip(bars["start_ms"], bars["duration_ms"], strict=True)),
                (row - 0.35, 0.7),
                facecolors=grey,
                edgecolors="black",
                linewidth=0.3,
                hatch=hatch,
                label=name,
            )
    ax.set_yticks(range(len(segments)), segments)
    ax.invert_yaxis()
    ax.set_xlim(0, step_ms if step_ms else float((events["start_ms"] + events["duration_ms"]).max()))
    ax.set_xlabel("time since the step began (ms)")
    ax.grid(axis="x", color="0.9")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per family, in FAMILY_STYLE's order
    ax.legend([unique[f] for f in families], families, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class FigureJob:
    """One figure to draw: ``draw(rows, **options)``; picklable, so it can be drawn in another process."""

    stem: str  # file name without extension
    caption: str
    draw: Callable[..., Figure | None]
    rows: pd.DataFrame
    options: tuple[tuple[str, object], ...] = ()

    def figure(self) -> Figure | None:
        return self.draw(self.rows, **dict(self.options))


HISTORY_COLUMNS = [
    "machine",
    "source",
    "run_time",
    "commit",
    "machine_label",
    "torch_version",
    "device",
    "phase",
    "batch_size",
    "optimizer",
    "label",
    "median",
    "q1",
    "q3",
]


def report_figures(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    table_frame: pd.DataFrame,
    history_by: str = "time",
    changes: Sequence[Change] = (),
) -> Iterator[FigureJob]:
    """Every figure the report may hold, per machine, as jobs (a job may draw nothing: None).

    ``frame``: all loaded rows (for history); ``table_frame``: the rows the tables
    describe (for distributions); ``summary``: their summary rows; ``changes``: the steps found in
    the history, marked on the history figures.
    """
    lenet = summary[summary["phase"].notna()]
    for machine, rows in lenet.groupby("machine", sort=False):
        for (device, batch), part in rows.groupby(["device", "batch_size"], sort=False):
            stem = f"{machine}-{device}-b{batch}"
            yield FigureJob(f"speedup-{stem}", f"Speedup per variant, {device}, batch {batch}", speedup_figure, part)
            yield FigureJob(f"phases-{stem}", f"Time per phase, {device}, batch {batch}", phase_breakdown_figure, part)
        for (device, phase), part in rows.groupby(["device", "phase"], sort=False):
            yield FigureJob(
                f"throughput-{machine}-{device}-{phase}",
                f"Throughput vs batch size, {device}, {phase}",
                throughput_figure,
                part,
            )
    runs = table_frame[table_frame["phase"].notna()].sort_values("run_time")
    latest = runs.groupby(["machine", "device", "phase", "batch_size", "optimizer", "label"], dropna=False).tail(1)
    keys = ["machine", "device", "phase", "batch_size"]
    for (machine, device, phase, batch), part in latest.groupby(keys, sort=False):
        stem, where = f"{machine}-{device}-{phase}-b{batch}", f"{device}, {phase}, batch {batch}"
        yield FigureJob(f"latency-{stem}", f"Latency, {where}", latency_figure, part)
    counted = "instructions" in frame.columns and frame["instructions"].notna().any()
    columns = [*HISTORY_COLUMNS, "instructions"] if counted else HISTORY_COLUMNS
    columns += [c for c in ("fullname", "name") if c in frame.columns and c not in columns]
    history = frame.loc[frame["phase"].notna(), columns]
    for (machine, device, phase, batch), part in history.groupby(keys, sort=False):
        stem, where = f"{machine}-{device}-{phase}-b{batch}", f"{device}, {phase}, batch {batch}"
        marks = (("changes", history_changes(changes, machine, part, TIME)),)
        yield FigureJob(f"history-{stem}", f"History, {where}", history_figure, part, (("by", history_by), *marks))
        if counted and part["instructions"].notna().any():
            marks = (("changes", history_changes(changes, machine, part, COUNTS)),)
            by_counts = (("by", history_by), ("metric", "instructions"), *marks)
            title = f"Instruction counts over runs, {where}"
            yield FigureJob(f"history-instructions-{stem}", title, history_figure, part, by_counts)


def trace_figures(traces: Sequence[Trace], problems: list[str]) -> Iterator[FigureJob]:
    """A timeline of one step per trace with a readable Chrome trace; a line in ``problems`` for the others."""
    for trace in traces:
        if trace.chrome is None:
            continue
        try:
            events = step_timeline(trace.chrome, trace.phase)
        except TraceError as error:
            problems.append(f"{trace.trace_file}: {error}")
            continue
        step, step_ms = events.attrs["step"], events.attrs["step_ms"]
        yield FigureJob(
            f"timeline-{trace.run}-{trace.case}",
            f"One step over time: {trace.title} (run {trace.run})",
            timeline_figure,
            events,
            (
                ("title", f"{trace.title}: one step ({step}, {step_ms:.3g} ms with the profiler on)\n{trace.run}"),
                ("step_ms", step_ms),
            ),
        )
