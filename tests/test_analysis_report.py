"""The report: golden Markdown from the fixture runs, CSV, plot contents, HTML, atomic writes, CLI."""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lenet.analysis import plots
from lenet.analysis.report import Report, build_report, write_report
from lenet.analysis.summary import latest_commit
from lenet.cli import report as report_cli
from lenet.runs.files import read_runs

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
RUNS = FIXTURES / "runs"  # read by conftest's frame fixture
GOLDEN = FIXTURES / "golden" / "report.md"


def relative(text: str) -> str:
    return text.replace(str(REPO) + os.sep, "")


def test_markdown_matches_the_golden_file(frame):
    markdown = build_report(frame, image_formats=()).markdown
    if os.environ.get("LENET_UPDATE_GOLDEN"):
        GOLDEN.write_text(markdown, encoding="utf-8")
    assert markdown == GOLDEN.read_text(encoding="utf-8")


def test_csv_holds_every_summary_row_with_raw_numbers(frame, summary):
    report = build_report(frame, image_formats=())
    from io import StringIO

    table = pd.read_csv(StringIO(report.csv))
    assert len(table) == len(summary) == 45
    assert {"machine", "label", "median", "speedup", "speedup_low", "interval_basis"} <= set(table.columns)
    ours = table[table["label"] == "cpu-channels_last-fp32-eager"]
    assert (ours["median"] < 0.01).all()  # seconds, not formatted text


def lenet_rows(summary, device="cpu", batch=8):
    return summary[(summary["device"] == device) & (summary["batch_size"] == batch)]


def test_speedup_plot_shows_each_variant_with_its_interval(summary):
    rows = lenet_rows(summary)
    fig = plots.speedup_figure(rows)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        "forward_inference",
        "forward_train",
        "backward",
        "optimizer_step (sgd)",
        "train_step (sgd)",
    ]
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == ["cpu-contiguous-fp32-eager", "cpu-contiguous-amp_bf16-eager", "cpu-channels_last-fp32-eager"]
    step = rows[rows["phase"] == "train_step"].set_index("label")
    marker_line = axes[4].lines[0]
    np.testing.assert_allclose(marker_line.get_xdata(), step.loc[labels, "speedup"].astype(float))
    # the whiskers span the confidence interval
    segments = axes[4].collections[0].get_segments()
    np.testing.assert_allclose([s[0][0] for s in segments], step.loc[labels, "speedup_low"].astype(float))
    np.testing.assert_allclose([s[1][0] for s in segments], step.loc[labels, "speedup_high"].astype(float))
    assert "batch 8" in fig._suptitle.get_text() and "torch 2.13.0+cpu" in fig._suptitle.get_text()
    plt.close(fig)


def test_latency_plot_draws_a_box_per_variant_from_rounds_or_quartiles(frame):
    table_frame = latest_commit(frame)
    cpu = (
        table_frame[
            (table_frame["device"] == "cpu") & (table_frame["phase"] == "train_step") & (table_frame["batch_size"] == 8)
        ]
        .sort_values("run_time")
        .groupby("label")
        .tail(1)
    )
    fig = plots.latency_figure(cpu)
    ax = fig.axes[0]
    assert len(ax.patches) == 3  # one box per variant
    assert "per-round data" in fig._suptitle.get_text()
    assert ax.get_xlabel() == "time per call (ms)"
    plt.close(fig)
    gpu = table_frame[(table_frame["device"] == "cuda") & (table_frame["phase"] == "train_step")]
    fig = plots.latency_figure(gpu)
    assert "saved quartiles" in fig._suptitle.get_text()
    medians = sorted(
        line.get_xdata()[0]
        for line in fig.axes[0].lines
        if len(set(line.get_xdata())) == 1 and line.get_ydata()[1] - line.get_ydata()[0] > 0.3
    )
    assert len(gpu) == 6
    np.testing.assert_allclose(sorted(medians)[:6], sorted(gpu["median"] * 1e3), rtol=1e-9)
    plt.close(fig)


def test_throughput_plot_has_a_line_per_variant_over_batch_sizes(summary):
    rows = summary[(summary["device"] == "cpu") & (summary["phase"] == "forward_inference")]
    fig = plots.throughput_figure(rows)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    for line in lines:
        assert list(line.get_xdata()) == [2, 8]
    reference = rows[rows["label"] == "cpu-contiguous-fp32-eager"].sort_values("batch_size")
    np.testing.assert_allclose(lines[0].get_ydata(), reference["samples_per_s"].astype(float))
    assert fig.axes[0].get_xlabel() == "batch size"
    plt.close(fig)


def test_phase_breakdown_stacks_forward_backward_and_step(summary):
    rows = lenet_rows(summary)
    fig = plots.phase_breakdown_figure(rows)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 3 * 3  # 3 variants x 3 phases
    for phase, start in (("forward_train", 0), ("backward", 3), ("optimizer_step", 6)):
        expected = rows[rows["phase"] == phase].set_index("label")["median"].astype(float) * 1e6
        widths = [bars[start + i].get_width() for i in range(3)]
        labels = ["cpu-contiguous-fp32-eager", "cpu-contiguous-amp_bf16-eager", "cpu-channels_last-fp32-eager"]
        np.testing.assert_allclose(widths, expected.loc[labels])
    assert ax.get_xlabel() == "median time (µs)"
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"forward_train", "backward", "optimizer_step"}
    plt.close(fig)


def test_history_plot_has_a_point_per_run(frame):
    rows = frame[(frame["device"] == "cpu") & (frame["phase"] == "train_step") & (frame["batch_size"] == 8)]
    fig = plots.history_figure(rows)
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # a series per variant
    assert all(len(series.lines[0].get_xdata()) == 2 for series in ax.containers)  # a point per run
    assert "2 runs" in fig._suptitle.get_text()
    plt.close(fig)
    one_run = rows[rows["source"] == rows["source"].iloc[0]]
    assert plots.history_figure(one_run) is None


def test_html_escapes_every_string_from_a_file(tmp_path):
    source = next((RUNS / "other-pb4").rglob("*.json"))
    run = json.loads(source.read_text())
    run["benchmarks"][0]["name"] = "<script>alert('x')</script>"
    run["benchmarks"][0]["params"] = {"n": "<img src=x onerror=alert(1)>"}
    run["machine_info"]["cpu"]["brand_raw"] = "<b>cpu</b>"
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(run))
    page = build_report(read_runs([hostile]).frame).html()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>cpu</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;cpu&lt;/b&gt;" in page


def test_report_is_written_atomically(tmp_path, frame, monkeypatch):
    report = build_report(frame[frame["phase"] == "backward"], image_formats=("png",))
    out = tmp_path / "report"

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Report, "html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(report, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written staging folder left behind
    monkeypatch.undo()
    written = write_report(report, out)
    assert (out / "report.md").read_text() == report.markdown
    assert {p.suffix for p in written} == {".md", ".csv", ".html", ".png"}
    with pytest.raises(FileExistsError, match="exists and is not an empty folder"):
        write_report(report, out)


def report_main(capsys, *args) -> tuple[int, str, str]:
    """The report command in this process: (exit status, stdout, stderr)."""
    status = report_cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_reports_good_runs_and_names_each_bad_file(tmp_path, capsys):
    out = tmp_path / "report"
    status, stdout, stderr = report_main(capsys, RUNS, FIXTURES / "bad", "-o", out, "--formats", "md,csv")
    assert status == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 4
    assert all(".json: " in w for w in warnings)
    assert f"{out}/report.md" in stdout and f"{out}/report.csv" in stdout
    assert (out / "report.md").read_text() == GOLDEN.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([str(FIXTURES / "bad")], "error: no benchmarks could be read from"),
        ([str(RUNS), "--phase", "backwards"], "error: phase filter backwards matches nothing; the runs have:"),
        ([str(RUNS), "--machine", "deadbeef"], "error: machine filter deadbeef matches nothing"),
    ],
)
def test_cli_fails_only_when_nothing_can_be_reported(tmp_path, capsys, args, message):
    status, _, stderr = report_main(capsys, *args, "-o", tmp_path / "out", "--formats", "md")
    assert status == 2  # bad input: never 1, which means a confirmed regression
    assert message in stderr
    assert not (tmp_path / "out").exists()


def test_a_selection_past_the_table_bound_is_refused_before_any_work_with_advice(tmp_path, capsys):
    status, _, stderr = report_main(capsys, RUNS, "-o", tmp_path / "out", "--max-tables", "2", "--formats", "md")
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith("error: this selection makes ") and "renders at most 2: narrow it with --variant" in stderr
    assert not (tmp_path / "out").exists()
    unbounded = ("--max-tables", "0", "--formats", "md")
    assert report_main(capsys, RUNS, "-o", tmp_path / "out", *unbounded)[0] == 0


def test_cli_refuses_bad_options_with_the_choices(capsys):
    for args, message in (
        (["--formats", "md,pdf"], "unknown pdf; choose from md, csv, html, png, svg"),
        (["--reference", "cpu-contiguous-fp64-eager"], "unknown precision 'fp64'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            report_cli.main(args)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        report_cli.main(["--help"])
    assert exit_info.value.code == 0


@pytest.mark.slow
def test_the_script_runs_as_a_command(tmp_path):
    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "report.py"),
            str(RUNS / "other-pb4"),
            "-o",
            str(out),
            "--formats",
            "md",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"{out}/report.md" in result.stdout and (out / "report.md").is_file()


def test_report_compares_with_a_baseline_of_the_same_machine(frame):
    from lenet.analysis.sides import load_side

    first, second = sorted((RUNS / "lenet-cpu").rglob("*.json"))
    baseline, _ = load_side([first], "baseline")
    report = build_report(frame[frame["source"] == str(second)], image_formats=(), baseline=baseline)
    assert report.comparison is not None and len(report.comparison.table) == 30
    assert "## Benchmark comparison" in report.markdown
    assert "30 inconclusive" in report.markdown  # one process per side decides nothing
    assert "<strong>No confirmed regression</strong> in 30 benchmarks" in report.html()
    other, _ = load_side([RUNS / "lenet-h200"], "baseline")
    elsewhere = build_report(frame[frame["source"] == str(second)], image_formats=(), baseline=other)
    assert elsewhere.comparison is None
    assert "none of these runs is from the baseline's machine (2655163e0254)" in elsewhere.markdown


def test_bad_values_do_not_sink_the_report(tmp_path, capsys):
    first, second = sorted((RUNS / "lenet-cpu").rglob("*.json"))
    run = json.loads(first.read_text())
    steps = [b for b in run["benchmarks"] if b["extra_info"]["phase"] == "train_step"]
    steps[0]["stats"]["median"] = float("nan")
    steps[1]["stats"]["median"] = 0
    steps[2]["stats"]["iqr"] = "wide"
    steps[3]["stats"]["data"] = [float("nan")] * 5
    steps[4]["stats"]["min"] = steps[4]["stats"]["ld15iqr"] = float("inf")
    steps[5]["extra_info"]["variant"] = {"not": "text"}
    run["machine_info"]["fingerprint"] = 1234
    run["datetime"] = 5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(run))
    later = json.loads(second.read_text())
    later["datetime"] = "2026-11-27T13:00:00+00:00"  # another process: the history has two runs with a time
    (tmp_path / "later.json").write_text(json.dumps(later))
    out = tmp_path / "report"
    args = (path, second, tmp_path / "later.json", "-o", out, "--formats", "md,png", "--phase", "train_step", "-q")
    status, _, stderr = report_main(capsys, *args, "--workers", "1")
    assert status == 0, stderr
    assert [line for line in stderr.splitlines() if line.startswith("warning: ")] == [stderr.strip()]
    assert stderr.startswith(f"warning: {path}: ")
    markdown = (out / "report.md").read_text()
    assert "### cpu · train_step · batch 2" in markdown and "### cpu · train_step · batch 8" in markdown
    assert {p.name.split("-")[0] for p in (out / "plots").iterdir()} >= {"latency", "history", "speedup"}


HOSTILE = "x\n# injected heading\n| a | b |\n| --- | --- |\n<script>alert(1)</script> `tick` *star* [link](http://example.com)"


def markdown_tables(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def assert_no_markup_from_files(markdown: str, headings: int) -> None:
    """The structure is ours: our headings only, every table row as wide as its header, no raw HTML or links."""
    assert sum(line.startswith("#") for line in markdown.splitlines()) == headings
    assert not any(line.lstrip("#").strip().startswith("injected") for line in markdown.splitlines())
    for table in markdown_tables(markdown):
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table}
        assert len(widths) == 1, table
    outside_code = re.sub(r"(`+).*?\1", "", markdown)
    assert not re.search(r"<[A-Za-z/!?]", outside_code) and "](" not in outside_code.replace("\\](", "")


def test_values_from_files_never_become_markdown(tmp_path):
    from lenet.analysis.blocks import Heading

    run = json.loads(next((RUNS / "other-pb4").rglob("*.json")).read_text())
    run["machine_info"]["cpu"]["brand_raw"] = HOSTILE
    run["benchmarks"][0]["name"] = HOSTILE
    run["benchmarks"][1]["group"] = HOSTILE
    run["benchmarks"][2]["params"] = {"n": HOSTILE}
    run["commit_info"]["id"] = "`| <b>"
    (tmp_path / "hostile.json").write_text(json.dumps(run))
    report = build_report(read_runs([tmp_path / "hostile.json"]).frame, image_formats=())
    assert "alert(1)" in report.markdown  # shown, as text
    assert_no_markup_from_files(report.markdown, sum(isinstance(b, Heading) for b in report.blocks))


def test_an_output_folder_that_cannot_be_written_is_one_error_line_and_exit_3(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    status, _, stderr = report_main(capsys, RUNS / "other-pb4", "-o", tmp_path / "file" / "sub", "--formats", "md")
    assert status == 3
    assert stderr.startswith(f"error: cannot write the report into {tmp_path / 'file' / 'sub'}: ")
    assert stderr.count("\n") == 1

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr("lenet.analysis.report.tempfile.mkdtemp", read_only)
    status, _, stderr = report_main(capsys, RUNS / "other-pb4", "-o", tmp_path / "out", "--formats", "md")
    assert (status, stderr.count("\n")) == (3, 1)
    assert stderr.startswith(f"error: cannot write the report into {tmp_path / 'out'}: Permission denied")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o077, 0o700), (0o002, 0o775)])
def test_the_report_folder_follows_the_umask(tmp_path, frame, umask, mode):
    report = build_report(frame[frame["phase"] == "backward"], image_formats=())
    old = os.umask(umask)
    try:
        write_report(report, tmp_path / "out", ("md",))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "out" / "report.md").stat().st_mode) == mode & 0o666


def test_values_from_files_never_name_a_path(tmp_path, capsys):
    first, second = sorted((RUNS / "lenet-cpu").rglob("*.json"))
    run = json.loads(first.read_text())
    run["machine_info"]["fingerprint"] = "../../escaped"
    backward = [b for b in run["benchmarks"] if b["extra_info"]["phase"] == "backward"]
    backward[0]["extra_info"]["device"] = "../../../escaped"
    backward[1]["extra_info"]["phase"] = "a/b"
    backward[2]["extra_info"]["device"] = ".."
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.json").write_text(json.dumps(run))
    out = work / "out"
    args = (work / "run.json", second, "-o", out, "--formats", "md,png", "--phase", "backward", "--workers", "1")
    status, _, stderr = report_main(capsys, *args)
    assert status == 0, stderr
    [warning] = stderr.splitlines()
    assert "machine_info.fingerprint is not a name" in warning and "using 3fb884d1daa2" in warning
    assert "2 benchmarks: extra_info.device is not a name" in warning and "extra_info.phase is not a name" in warning
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(out) or p == work / "run.json" for p in written), written
    assert all(
        p.name.startswith(("report.", "speedup-3fb884d1daa2-cpu-b", "phases-", "latency-", "history-", "throughput-"))
        for p in written
        if p.is_relative_to(out)
    )


def test_a_figure_file_name_is_always_one_safe_name():
    from lenet.analysis.report import file_stem

    assert file_stem("speedup-3fb884d1daa2-cpu-b8") == "speedup-3fb884d1daa2-cpu-b8"
    for stem in ("../../x", "a/b", "..", ".hidden", "x\n", "a" * 300):
        name = file_stem(stem)
        assert "/" not in name and not name.startswith(".") and len(name) <= 200 and name not in (".", "..")
    assert file_stem("a/b") != file_stem("a_b") != file_stem("a?b")
