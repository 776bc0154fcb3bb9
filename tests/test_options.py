"""Every option and its environment twin, checked by one parser before anything runs."""

from pathlib import Path

import pytest

from lenet.options import (
    DEFAULT_TRACE_DIR,
    OPTIONS,
    RunOptions,
    TraceSettings,
    parse_switch,
    parse_trace_settings,
)
from lenet.variants import SelectionError, parse_batch_size, parse_optimizer


def parse(environ=None, cpu_count=2, **given):
    flags = {f"--{name.replace('_', '-')}": value for name, value in given.items()}
    return RunOptions.parse(flags, environ or {}, cpu_count)


def test_defaults_are_the_quick_preset_without_passes():
    options = parse()
    assert options.preset == "quick" and options.threads is None
    assert not options.profile and not options.count_instructions
    assert options.trace_dir is None and options.instruction_repeats is None


def test_the_command_line_wins_over_the_environment():
    options = parse({"LENET_PRESET": "full", "LENET_BATCH_SIZES": "8"}, batch_sizes="2")
    assert options.preset == "full" and options.selection.batch_sizes == (2,)


def test_switches_turn_passes_on_with_their_settings():
    options = parse({"LENET_PROFILE": "yes", "LENET_PROFILE_STEPS": "5", "LENET_TRACE_FORMAT": "json"})
    assert options.trace_settings == TraceSettings(active=5, use_gzip=False)
    assert options.trace_dir == DEFAULT_TRACE_DIR
    options = parse(instructions=True, instructions_repeats="2", trace_dir="elsewhere", profile=True)
    assert options.instruction_repeats == 2 and options.trace_dir == Path("elsewhere")


@pytest.mark.parametrize(
    ("given", "environ", "message"),
    [
        ({"preset": ""}, {}, "unknown preset ''; choose from quick, full, cuda, smoke"),
        # what pytest bench refuses before any benchmark (one of them end to end: test_bench_e2e.py)
        ({"variants": "cpu-nhwc-fp32-eager"}, {}, "unknown memory format 'nhwc'; choose from contiguous"),
        ({"batch_sizes": "64,0"}, {}, "batch size 0 must be a positive integer"),
        ({"preset": "fastest"}, {}, "unknown preset 'fastest'; choose from quick, full, cuda, smoke"),
        ({}, {"LENET_PRESET": "fastest"}, "unknown preset 'fastest'"),
        ({"threads": "0"}, {}, "threads '0' must be a whole number from 1 to"),
        ({}, {"LENET_PRESET": " "}, "unknown preset ' '"),
        ({"optimizers": "adam_"}, {}, "unknown optimizer 'adam_'; choose from sgd, sgd_forloop"),
        ({"batch_sizes": "２"}, {}, "batch size '２' is not a whole number"),
        ({"batch_sizes": "100000000"}, {}, "batch size 100000000 is larger than 65536"),
        ({"threads": "100000"}, {}, "threads '100000' must be a whole number from 1 to 8"),
        ({"threads": "1.5"}, {}, "threads '1.5' must be a whole number"),
        # checked even when the switch that uses them is off: a typo never passes silently
        ({"profile_steps": "abc"}, {}, "profile steps 'abc' must be a whole number from 1 to 1000"),
        ({"trace_format": "perfetto"}, {}, "trace format 'perfetto' is unknown; choose from json.gz, json"),
        ({"instructions_repeats": "0"}, {}, "instructions repeats '0' must be a whole number from 1 to 100"),
        ({"trace_dir": " ", "profile": True}, {}, "trace dir '' is empty"),
        ({}, {"LENET_PROFILE": "maybe"}, "LENET_PROFILE='maybe': choose from 1, true, yes, on, 0, false, no, off"),
        ({"publish_db": "results/db"}, {}, "publish db must be a postgresql:// URL"),
        ({}, {"LENET_PUBLISH_DB": ""}, "publish db must be a postgresql:// URL"),
    ],
)
def test_a_bad_value_is_one_line_naming_it_and_the_choices(given, environ, message):
    with pytest.raises(SelectionError) as raised:
        parse(environ, **given)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_parsers_on_literal_values():
    assert parse_trace_settings() == TraceSettings(active=3, use_gzip=True)
    assert parse_trace_settings("5", "json") == TraceSettings(active=5, use_gzip=False)
    assert (
        parse_switch("1", "X") and parse_switch("ON", "X") and not parse_switch("", "X") and not parse_switch(None, "X")
    )
    assert parse_batch_size(" 64 ") == 64 and parse_optimizer("adam_fused").id == "adam_fused"


def test_every_option_has_an_environment_twin_of_its_own():
    envs = [option.env for option in OPTIONS]
    assert len(set(envs)) == len(envs) and all(env.startswith("LENET_") for env in envs)
    assert {option.flag for option in OPTIONS} >= {"--preset", "--threads", "--profile", "--instructions"}


def test_metrics_are_on_by_default_and_compile_cost_off():
    options = parse()
    assert options.metrics and not options.compile_cost and options.peaks_dir == Path("results") / "peaks"
    options = parse({"LENET_NO_METRICS": "1", "LENET_COMPILE_COST": "yes", "LENET_PEAKS_DIR": "p"})
    assert not options.metrics and options.compile_cost and options.peaks_dir == Path("p")
    assert parse(no_metrics=True, compile_cost=True).compile_cost
    with pytest.raises(SelectionError, match="peaks dir '' is empty"):
        parse(peaks_dir=" ")
    with pytest.raises(SelectionError, match="LENET_COMPILE_COST='later'"):
        parse({"LENET_COMPILE_COST": "later"})
