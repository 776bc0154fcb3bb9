"""Metric rows (``lenet.analysis.metric_tables.metric_rows``) -> roofline and memory Figures. Presentation only.

The roofline (Williams, Waterman and Patterson, CACM 2009) puts each variant x phase at its
arithmetic intensity (FLOPs per byte, bytes estimated from each op's input and output sizes: a
lower bound on traffic, so a point may sit further left than the truth) and its achieved
GFLOP/s, under the machine's *measured* roofs: the bandwidth line (GB/s x intensity) and a
flat line per matmul precision. One figure per machine, device and batch size.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import cycle

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lenet.analysis.plots import COLORS, HATCHES, LINESTYLES, MARKERS, FigureJob, _in_variant_order, _one_optimizer
from lenet.variants import PHASES

PHASE_MARKERS = dict(zip(PHASES, MARKERS, strict=False))


def _context(rows: pd.DataFrame) -> str:
    return str(rows["machine_label"].iloc[0])


def roofline_figure(rows: pd.DataFrame) -> Figure | None:
    """Achieved GFLOP/s against arithmetic intensity, one point per variant x phase, under the measured roofs."""
    points = _one_optimizer(rows[rows["gflops_per_s"].notna() & rows["intensity"].notna()])
    if points.empty:
        return None
    points = _in_variant_order(points)
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    low = float(points["intensity"].min()) / 4
    high = float(points["intensity"].max()) * 4
    bandwidth = pd.to_numeric(rows["peak_bandwidth_gbs"], errors="coerce").dropna()
    roofs = rows.dropna(subset=["peak_gflops_kind"]).groupby("peak_gflops_kind")["peak_gflops"].median()
    if not bandwidth.empty and not roofs.empty:
        gbs = float(bandwidth.median())
        high = max(high, float(roofs.max()) / gbs * 4)  # show every ridge point
        x = np.geomspace(low, high, 200)
        for (kind, roof), style in zip(roofs.sort_values().items(), cycle(LINESTYLES), strict=False):
            ax.plot(
                x,
                np.minimum(gbs * x, roof),
                "k",
                linestyle=style,
                linewidth=1,
                label=f"roof: {kind} {roof:,.0f} GFLOP/s",
            )
        slope = x[gbs * x <= float(roofs.max())]
        ax.plot(slope, gbs * slope, color="0.6", linewidth=2.5, alpha=0.5, label=f"bandwidth {gbs:,.1f} GB/s")
    colors = {label: color for label, color in zip(dict.fromkeys(points["label"]), cycle(COLORS), strict=False)}
    for r in points.itertuples():
        ax.scatter(
            r.intensity,
            r.gflops_per_s,
            color=colors[r.label],
            marker=PHASE_MARKERS.get(r.phase, "o"),
            edgecolors="black",
            linewidths=0.5,
            s=45,
            zorder=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs / byte; bytes: each op's inputs + outputs, a lower bound)")
    ax.set_ylabel("achieved GFLOP/s (FlopCounterMode FLOPs / median)")
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    for label, color in colors.items():
        handles.append(ax.scatter([], [], color=color, marker="s", edgecolors="black", linewidths=0.5))
        labels.append(label)
    for phase in dict.fromkeys(points["phase"]):
        handles.append(ax.scatter([], [], color="white", marker=PHASE_MARKERS.get(phase, "o"), edgecolors="black"))
        labels.append(phase)
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    batch = rows["batch_size"].iloc[0]
    fig.suptitle(f"Roofline, {rows['device'].iloc[0]}, batch {batch}: {_context(rows)}", fontsize=10)
    fig.tight_layout()
    return fig


def memory_figure(rows: pd.DataFrame) -> Figure | None:
    """Peak memory per phase and variant at one batch size: grouped bars, hatched as well as coloured."""
    part = _in_variant_order(_one_optimizer(rows[rows["memory_peak_bytes"].notna()]))
    if part.empty:
        return None
    phases = [p for p in PHASES if p in set(part["phase"])]
    labels = list(dict.fromkeys(part["label"]))
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    width = 0.8 / len(labels)
    for index, (label, color, hatch) in enumerate(zip(labels, cycle(COLORS), cycle(HATCHES), strict=False)):
        mine = part[part["label"] == label].set_index("phase")["memory_peak_bytes"]
        heights = [float(mine.get(p, np.nan)) / 2**20 for p in phases]
        positions = np.arange(len(phases)) + (index - (len(labels) - 1) / 2) * width
        ax.bar(positions, heights, width, color=color, hatch=hatch, edgecolor="black", linewidth=0.5, label=label)
    ax.set_xticks(np.arange(len(phases)), phases, fontsize=8)
    ax.set_ylabel("peak memory the call adds (MiB)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(
        f"Peak memory, {rows['device'].iloc[0]}, batch {rows['batch_size'].iloc[0]}: {_context(rows)}", fontsize=10
    )
    fig.tight_layout()
    return fig


def memory_scaling_figure(rows: pd.DataFrame) -> Figure | None:
    """Peak memory against batch size, a line per variant, for one phase (drawn when there are 2+ batch sizes)."""
    part = _in_variant_order(_one_optimizer(rows[rows["memory_peak_bytes"].notna()]))
    if part["batch_size"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    styles = zip(cycle(COLORS), cycle(MARKERS), cycle(LINESTYLES))
    for (label, line), (color, marker, style) in zip(part.groupby("label", sort=False), styles, strict=False):
        line = line.sort_values("batch_size")
        mib = line["memory_peak_bytes"].astype(float) / 2**20
        ax.plot(line["batch_size"].astype(int), mib, color=color, marker=marker, linestyle=style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("peak memory the call adds (MiB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Peak memory vs batch size, {rows['phase'].iloc[0]}: {_context(rows)}", fontsize=10)
    fig.tight_layout()
    return fig


def metric_figures(rows: pd.DataFrame) -> Iterator[FigureJob]:
    """A roofline and a memory figure per machine, device and batch size; memory vs batch size per phase."""
    if rows.empty:
        return
    for (machine, device, batch), part in rows.groupby(["machine", "device", "batch_size"], sort=False):
        stem = f"{machine}-{device}-b{batch}"
        yield FigureJob(f"roofline-{stem}", f"Roofline, {device}, batch {batch}", roofline_figure, part)
        yield FigureJob(f"memory-{stem}", f"Peak memory, {device}, batch {batch}", memory_figure, part)
    for (machine, device, phase), part in rows.groupby(["machine", "device", "phase"], sort=False):
        yield FigureJob(
            f"memory-scaling-{machine}-{device}-{phase}",
            f"Peak memory vs batch size, {device}, {phase}",
            memory_scaling_figure,
            part,
        )
