"""Machine-state parsers on literal /proc text, and each stability check on literal round lists."""

import json

import pytest

from lenet.harness import time_checked_rounds
from lenet.runs.record import Record, Stability
from lenet.stability import (
    ADVICE,
    CHECKS,
    Bounds,
    CpuSettings,
    CpuTicks,
    Flag,
    ProcessUsage,
    RoundsState,
    SetupMeter,
    Snapshot,
    Timed,
    check_phase_sums,
    check_rounds,
    check_state,
    cpu_settings,
    drift,
    parse_cpu_count,
    parse_loadavg,
    parse_proc_stat,
    recheck,
    robust_spread,
    rounds_state,
    stability_record,
    summary_lines,
    take_snapshot,
    with_flags,
)
from lenet.variants import Case, Phase, parse_optimizer, parse_variant

PROC_STAT = """cpu  51647 2692 9101 89937 448 0 75 29 0 0
cpu0 19901 1623 3884 51335 146 0 12 11 0 0
cpu1 31745 1069 5217 38602 302 0 62 18 0 0
intr 123 0
ctxt 456
"""


def reader(files):
    """A ``read`` over a dict of literal files; a missing one raises as a missing file does."""

    def read(path):
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    return read


def test_proc_stat_is_parsed_from_its_aggregate_line():
    ticks = parse_proc_stat(PROC_STAT)
    assert ticks == CpuTicks(51647, 2692, 9101, 89937, 448, 0, 75, 29)
    assert ticks.busy == 51647 + 2692 + 9101 + 75 and ticks.total == ticks.busy + 89937 + 448 + 29
    assert parse_cpu_count(PROC_STAT) == 2
    # a kernel before 2.6.11 has no steal column
    assert parse_proc_stat("cpu  1 2 3 4 5 6 7\n").steal == 0
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        parse_proc_stat("cpu0 1 2 3 4\n")


def test_loadavg_gives_the_one_minute_load():
    assert parse_loadavg("2.56 1.64 0.76 2/109 18210\n") == 2.56


def test_a_snapshot_says_why_the_machine_figures_are_missing():
    usage = ProcessUsage(cpu_seconds=1.0, wall=5.0)
    full = take_snapshot(reader({"/proc/stat": PROC_STAT, "/proc/loadavg": "0.5 0.4 0.3 1/2 3"}), lambda: usage)
    assert full.ticks is not None and full.load == 0.5 and full.problem is None and full.usage == usage
    bare = take_snapshot(reader({}), lambda: usage)
    assert bare.ticks is None and bare.load is None
    assert "/proc/stat or /proc/loadavg: No such file or directory" in bare.problem


def test_governor_and_boost_are_read_where_the_kernel_has_them():
    governors = {f"/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_governor": "performance\n" for n in (0, 1)}
    both = cpu_settings(reader({**governors, "/sys/devices/system/cpu/cpufreq/boost": "1\n"}), cpus=[0, 1])
    assert both == CpuSettings("performance", "on")
    intel = cpu_settings(reader({"/sys/devices/system/cpu/intel_pstate/no_turbo": "1\n"}), cpus=[0])
    assert intel.boost == "off" and intel.governor.startswith("unavailable: no cpufreq driver")
    mixed = {**governors, "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor": "powersave\n"}
    assert cpu_settings(reader(mixed), cpus=[0, 1]).governor == "performance,powersave"
    assert cpu_settings(reader({}), cpus=[0]).boost.startswith("unavailable: ")


def snapshot(ticks, cpu_seconds, wall, faults=0, load=1.0):
    return Snapshot(ProcessUsage(cpu_seconds, faults, 0, 0, 0, wall), ticks, load)


def test_rounds_state_shares_and_this_process_with_its_set_up_left_out():
    before = snapshot(CpuTicks(1000, 0, 0, 1000, 0, 0, 0, 0), cpu_seconds=10.0, wall=100.0, faults=50)
    # 2 s on 2 CPUs = 400 ticks: 300 busy (this process 1.0 s of it), 60 idle, 20 iowait, 20 stolen
    after = snapshot(CpuTicks(1300, 0, 0, 1060, 20, 0, 0, 20), cpu_seconds=11.0, wall=102.0, faults=1050)
    setup = ProcessUsage(cpu_seconds=0.2, minor_faults=40, wall=0.5)
    state = rounds_state(before, after, calls=10, setup=setup, ticks_per_second=100)
    assert state.steal_share == pytest.approx(0.05) and state.iowait_share == pytest.approx(0.05)
    assert state.busy_share == pytest.approx((3.0 - 1.0) / 4.0)  # others: 2 of the 4 CPU-seconds
    assert state.wall_seconds == pytest.approx(1.5) and state.own.cpu_seconds == pytest.approx(0.8)
    assert state.sampled_seconds == pytest.approx(2.0)
    assert state.cpu_per_wall == pytest.approx(0.8 / 1.5) and state.per_call(state.own.minor_faults) == 96
    assert state.load_before == 1.0 and state.unavailable is None
    unknown = rounds_state(Snapshot(before.usage, None, None, "no /proc"), after, calls=0)
    assert unknown.busy_share is None and unknown.unavailable == "no /proc" and unknown.per_call(5) is None


def test_the_setup_meter_adds_up_what_set_ups_used():
    readings = iter([ProcessUsage(1.0, 10, wall=0.0), ProcessUsage(1.5, 30, wall=2.0)] * 2)
    meter = SetupMeter(lambda: ((1,), {}), usage=lambda: next(readings))
    assert meter() == ((1,), {}) and meter() == ((1,), {})
    assert meter.calls == 2 and meter.total == ProcessUsage(1.0, 40, wall=4.0)


STEADY = [0.010, 0.0101, 0.0099, 0.0102, 0.0100, 0.0098, 0.0101, 0.0100, 0.0099, 0.0100, 0.0101, 0.0100]


def test_steady_rounds_pass_every_check():
    assert robust_spread(STEADY) < 0.02 and abs(drift(STEADY)) < 0.02
    assert check_rounds(STEADY) == []


def test_drifting_rounds_are_flagged_with_their_reason():
    drifting = [0.010 * (1 + 0.05 * i) for i in range(12)]  # each round 5% slower than the first
    [flag] = [f for f in check_rounds(drifting) if f.check == "drift"]
    assert "the last third of the rounds ran +37% against the first" in flag.reason
    assert flag.advice == ADVICE["drift"]


def test_spread_and_too_few_rounds_are_flagged():
    scattered = [0.010, 0.030, 0.011, 0.028, 0.009, 0.031, 0.010, 0.029, 0.012, 0.030, 0.010, 0.027]
    assert "spread" in [f.check for f in check_rounds(scattered)]
    few = check_rounds(STEADY[:5])
    assert [f.check for f in few] == ["few_rounds"]
    assert few[0].reason == "5 rounds; spread and drift need at least 10"


def state_with(wall=1.0, busy=0.0, steal=0.0, faults=0, major=0, calls=10, preempted=10):
    usage = ProcessUsage(1.0, faults, major, 0, preempted, wall=wall)
    return RoundsState(calls, wall, usage, steal_share=steal, busy_share=busy, sampled_seconds=wall)


def test_a_busy_or_stolen_machine_and_page_faults_are_flagged():
    assert check_state(state_with()) == []
    checks = [f.check for f in check_state(state_with(busy=0.48, steal=0.2, faults=10_000))]
    assert checks == ["steal", "busy", "page_faults"]
    [major] = check_state(state_with(major=3))
    assert major.check == "page_faults" and "3 major page faults" in major.reason


def test_a_busy_machine_that_never_preempted_the_calls_is_not_flagged():
    """Short calls that other work rarely cut keep their median: the busy share alone is no flag."""
    assert check_state(state_with(busy=0.48, preempted=2)) == []  # 0.2 preemptions per call
    [flag] = check_state(state_with(busy=0.48, preempted=20))
    assert flag.reason == "other processes used 48% of the CPUs' time, preempting 2 times per call; bound 10%"


def test_a_share_over_a_short_span_must_clear_the_ticks_uncertainty():
    # 50 ms at 100 ticks/s: one tick per CPU is 20% of the whole
    assert check_state(state_with(wall=0.05, busy=0.25, steal=0.25)) == []
    [flag] = check_state(state_with(wall=0.05, busy=0.5))
    assert flag.reason.startswith("other processes used 50% of the CPUs' time (±20% over 0.05 s), preempting")
    assert check_state(state_with(wall=0.0, busy=1.0)) == []  # no span: nothing to judge


def timed(phase, median, variant="cpu-contiguous-fp32-eager", optimizer=None):
    return Timed(phase, variant, 64, optimizer, median)


def test_the_loaded_machine_from_the_issue_is_flagged_by_its_phases():
    """316 ms for a train step whose phases sum to ~20 ms: the step was disturbed."""
    benchmarks = [
        timed("forward_train", 0.007),
        timed("backward", 0.010),
        timed("optimizer_step", 0.003, optimizer="sgd"),
        timed("train_step", 0.316, optimizer="sgd"),
        timed("forward_inference", 0.005),
    ]
    flags = check_phase_sums(benchmarks)
    assert list(flags) == [3] and flags[3].check == "phase_sum"
    assert "the train step (316 ms) is 15.80x the sum of its phases (7 + 10 + 3 = 20 ms)" in flags[3].reason


def test_a_step_faster_than_its_phases_flags_the_phases_and_a_matching_one_passes():
    slow_phase = [
        timed("forward_train", 0.100),
        timed("backward", 0.010),
        timed("optimizer_step", 0.003, optimizer="sgd"),
    ]
    flags = check_phase_sums([*slow_phase, timed("train_step", 0.020, optimizer="sgd")])
    assert sorted(flags) == [0, 1, 2]
    fine = [*slow_phase[1:], timed("forward_train", 0.007), timed("train_step", 0.021, optimizer="sgd")]
    assert check_phase_sums(fine) == {}
    # another optimizer's step, or another variant, pairs with nothing
    other = [timed("forward_train", 0.1), timed("backward", 0.1), timed("train_step", 9.0, optimizer="adam")]
    assert check_phase_sums([*other, timed("optimizer_step", 0.1, optimizer="sgd")]) == {}


def test_bounds_parse_names_a_bad_bound_and_its_choices():
    assert Bounds.parse("spread=0.4, busy=0.2") == Bounds(spread=0.4, busy=0.2)
    assert Bounds.parse(None) == Bounds() == Bounds.parse(" ")
    assert Bounds.parse("min_rounds=1000000").min_rounds == 1_000_000
    with pytest.raises(ValueError, match="stability bound 'noise' is unknown; choose from min_rounds, spread"):
        Bounds.parse("noise=1")
    with pytest.raises(ValueError, match="stability bound spread='lots' is not a number"):
        Bounds.parse("spread=lots")
    with pytest.raises(ValueError, match="must not be negative"):
        Bounds.parse("drift=-1")


def test_every_check_has_advice():
    assert set(ADVICE) == set(CHECKS)


CASE = Case(Phase.TRAIN_STEP, parse_variant("cpu-contiguous-fp32-eager"), 64, parse_optimizer("sgd"))


def test_the_stability_record_round_trips_and_flags_can_be_added():
    state = RoundsState(
        42, 1.0, ProcessUsage(1.9, 420, 0, 10, 84, 1.0), 0.5, 0.7, 0.0, 0.0, 0.02, CpuSettings("performance", "off")
    )
    stability = stability_record(state, STEADY, [Flag("few_rounds", "5 rounds")], attempts=2)
    assert stability.minor_faults_per_call == 10 and stability.involuntary_switches_per_call == 2
    record = Record.for_case(CASE, samples_per_s=1.0, stability=stability)
    info = json.loads(json.dumps(record.to_extra_info()))
    assert info["stability_flags"] == ["few_rounds"] and info["cpu_governor"] == "performance"
    assert info["stability_attempts"] == 2 and info["busy_share"] == 0.02
    assert Record.from_extra_info(info) == record
    more = with_flags(stability, [Flag("phase_sum", "1.8x")])
    assert more.stability_flags == ("few_rounds", "phase_sum") and more.flagged
    # nothing measured: only the checks' verdict is written
    bare = Stability()
    assert set(bare.to_extra_info()) == {"stability_flags", "stability_reasons"} and not bare.flagged


def test_a_run_without_the_checks_loads_without_a_verdict():
    info = Record.for_case(CASE).to_extra_info()
    assert not any(key.startswith("stability") for key in info)
    assert Record.from_extra_info(info).stability is None


def test_the_end_of_run_list_names_each_flagged_benchmark_and_advises_once_per_check():
    infos = [
        ("test_a", Stability(stability_flags=("busy",), stability_reasons=("others used 48%",))),
        ("test_b", Stability(stability_flags=("busy", "drift"), stability_reasons=("others used 50%", "+30%"))),
    ]
    lines = summary_lines(infos, total=20)
    assert lines[0].startswith("lenet-bench: 2 of 20 benchmarks flagged unstable")
    assert "  test_b: busy: others used 50%; drift: +30%" in lines
    assert sum(line.strip().startswith("busy:") for line in lines) == 1
    assert summary_lines([], total=20) == []


class FakePrepared:
    call = type("Call", (), {"setup": None, "target": None})()
    warmup = None


def test_a_flagged_benchmark_is_timed_again_up_to_the_reruns_and_the_last_is_kept():
    attempts = iter([[0.01] * 3, [0.01] * 3, STEADY])
    current = {}
    forgotten = []

    def run_rounds(call, warmup):
        current["times"] = next(attempts)
        return len(current["times"])

    checked = time_checked_rounds(
        FakePrepared(),
        run_rounds,
        "t",
        round_times=lambda: current["times"],
        forget=lambda: forgotten.append(1),
        reruns=5,
    )
    assert checked.attempts == 3 and checked.flags == () and len(forgotten) == 2
    assert checked.state.calls == len(STEADY)
    once = iter([[0.01] * 3, STEADY])
    current.clear()

    def run_once(call, warmup):
        current["times"] = next(once)
        return 3

    kept = time_checked_rounds(FakePrepared(), run_once, "t", lambda: current["times"], lambda: None, reruns=0)
    assert kept.attempts == 1 and [f.check for f in kept.flags][:1] == ["few_rounds"]


def test_a_saved_benchmark_can_be_judged_again_under_other_bounds():
    saved = Stability(
        rounds_spread=0.30,
        rounds_drift=0.02,
        sampled_seconds=1.0,
        busy_share=0.2,
        minor_faults_per_call=0.01,
        involuntary_switches_per_call=1.5,
    )
    assert [f.check for f in recheck(saved, rounds=40)] == ["spread", "busy"]
    assert recheck(saved, rounds=40, bounds=Bounds(spread=0.5, busy=0.5)) == []
    assert [f.check for f in recheck(Stability(major_faults_per_call=0.1, calls=30), rounds=40)] == ["page_faults"]


def test_the_load_average_is_read_from_proc_or_is_none():
    from lenet.stability import load_average

    assert load_average(lambda path: "0.71 1.20 1.43 2/103 8456\n") == 0.71

    def missing(path):
        raise OSError(path)

    assert load_average(missing) is None and load_average(lambda path: "") is None


@pytest.mark.parametrize("text", ["spread=nan", "busy=inf", "drift=-inf"])
def test_a_bound_that_is_not_finite_is_refused(text):
    with pytest.raises(ValueError, match="must be a finite number"):
        Bounds.parse(text)
