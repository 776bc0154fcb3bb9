"""Variant ids, generation, selection, presets and skip reasons."""

import pytest
import torch

from lenet.variants import (
    PRESETS,
    Case,
    OptimizerSpec,
    Phase,
    SelectionError,
    Variant,
    all_variants,
    build_selection,
    nonsense_reason,
    parse_optimizer,
    parse_variant,
    select_variants,
    skip_reason,
)


def test_id_is_stable_and_readable():
    variant = Variant("cpu", "channels_last", "amp_bf16", "compile")
    assert variant.id == "cpu-channels_last-amp_bf16-compile"
    assert parse_variant(variant.id) == variant
    assert str(variant) == variant.id


def test_variants_are_frozen():
    with pytest.raises(AttributeError):
        Variant().device = "cuda"  # type: ignore[misc]


def test_every_generated_variant_round_trips_and_ids_are_unique():
    variants = all_variants()
    assert len({v.id for v in variants}) == len(variants)
    assert all(parse_variant(v.id) == v for v in variants)


def test_nonsense_combinations_are_not_generated():
    ids = {v.id for v in all_variants()}
    assert "cpu-contiguous-tf32-eager" not in ids
    assert "cpu-contiguous-amp_fp16-eager" not in ids
    assert "cpu-contiguous-fp32-compile_reduce_overhead" not in ids
    assert "cuda-contiguous-tf32-eager" in ids
    assert "cuda-channels_last-amp_fp16-compile_reduce_overhead" in ids
    # module scope: 2 memory formats x (cpu: 2 precisions x 3 compile modes + cuda: 4 x 4)
    # step scope: 2 memory formats x (cpu: 2 precisions x 2 compilers + cuda: 3 precisions (not amp_fp16) x 4)
    assert len(ids) == 2 * (2 * 3) + 2 * (4 * 4) + 2 * (2 * 2) + 2 * (3 * 4)


def test_nonsense_reason_explains():
    assert "CUDA math mode" in nonsense_reason(Variant(precision="tf32"))
    assert nonsense_reason(Variant(device="cuda", precision="tf32")) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpu-contiguous-fp32", "must have 4 or 5 parts"),
        ("gpu-contiguous-fp32-eager", "unknown device 'gpu'; choose from cpu, cuda"),
        ("cpu-nhwc-fp32-eager", "unknown memory format 'nhwc'; choose from contiguous, channels_last"),
        ("cpu-contiguous-fp8-eager", "unknown precision 'fp8'; choose from fp32, tf32, amp_bf16, amp_fp16"),
        ("cpu-contiguous-fp32-jit", "unknown compile 'jit'; choose from eager, compile"),
        ("cpu-contiguous-tf32-eager", "not a valid combination: tf32 is a CUDA math mode"),
    ],
)
def test_unknown_variant_names_the_value_and_the_legal_choices(text, message):
    with pytest.raises(SelectionError) as info:
        parse_variant(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_globs_select_and_a_glob_matching_nothing_is_an_error():
    cpu_fp32 = select_variants(["cpu-*-fp32-*"])
    assert [v.id for v in cpu_fp32] == [
        "cpu-contiguous-fp32-eager",
        "cpu-contiguous-fp32-compile",
        "cpu-contiguous-fp32-compile-step",
        "cpu-contiguous-fp32-compile_max_autotune",
        "cpu-contiguous-fp32-compile_max_autotune-step",
        "cpu-channels_last-fp32-eager",
        "cpu-channels_last-fp32-compile",
        "cpu-channels_last-fp32-compile-step",
        "cpu-channels_last-fp32-compile_max_autotune",
        "cpu-channels_last-fp32-compile_max_autotune-step",
    ]
    assert select_variants(["cpu-*", "cpu-contiguous-fp32-eager"])[0].id == "cpu-contiguous-fp32-eager"
    assert len(select_variants(["cpu-*", "cpu-contiguous-fp32-eager"])) == 12 + 8  # no duplicates
    with pytest.raises(SelectionError, match="'tpu-\\*' matches no variant"):
        select_variants(["tpu-*"])


def test_optimizers_parse_and_unknown_ones_list_the_choices():
    assert parse_optimizer("sgd") == OptimizerSpec("sgd", "default")
    assert parse_optimizer("adam_fused") == OptimizerSpec("adam", "fused")
    assert parse_optimizer("adam_fused").id == "adam_fused"
    with pytest.raises(SelectionError, match="unknown optimizer 'lamb'; choose from sgd, sgd_forloop"):
        parse_optimizer("lamb")


@pytest.mark.parametrize("bad", ["0", "-4", "sixty"])
def test_bad_batch_sizes_are_refused(bad):
    with pytest.raises(SelectionError, match=f"batch size .*{bad}"):
        build_selection(batch_sizes=bad)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SelectionError, match="unknown preset 'fast'; choose from quick, full, cuda, smoke"):
        build_selection(preset="fast")


def test_unknown_phase_lists_the_phases():
    with pytest.raises(SelectionError, match="unknown phase 'step'; choose from forward_inference"):
        build_selection(phases="step")


def test_every_preset_builds():
    for name in PRESETS:
        selection = build_selection(preset=name)
        assert selection.variants and selection.batch_sizes and selection.phases


def test_explicit_lists_override_the_preset():
    selection = build_selection(preset="full", variants="cpu-contiguous-fp32-eager", batch_sizes="8, 8,16")
    assert [v.id for v in selection.variants] == ["cpu-contiguous-fp32-eager"]
    assert selection.batch_sizes == (8, 16)
    assert len(selection.optimizers) == 4


def test_optimizers_cross_only_the_phases_that_step():
    selection = build_selection(preset="smoke", optimizers="sgd,adam", batch_sizes="2,4")
    assert [c.id for c in selection.cases(Phase.FORWARD_INFERENCE)] == [
        "cpu-contiguous-fp32-eager-b2",
        "cpu-contiguous-fp32-eager-b4",
    ]
    assert [c.id for c in selection.cases(Phase.TRAIN_STEP)] == [
        "cpu-contiguous-fp32-eager-sgd-b2",
        "cpu-contiguous-fp32-eager-adam-b2",
        "cpu-contiguous-fp32-eager-sgd-b4",
        "cpu-contiguous-fp32-eager-adam-b4",
    ]
    assert build_selection(preset="smoke", phases="backward").cases(Phase.TRAIN_STEP) == []


def test_quick_preset_fits_a_small_cpu():
    quick = build_selection(preset="quick")
    cpu = [v for v in quick.variants if v.device == "cpu"]
    assert len(cpu) == 4 and quick.batch_sizes == (64,)
    assert sum(len(quick.cases(p)) for p in quick.phases) == 35


def _case(variant_id, optimizer=None):
    return Case(Phase.TRAIN_STEP, parse_variant(variant_id), 8, optimizer)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip reasons of a machine without CUDA")
def test_cuda_cases_are_skipped_with_a_reason_without_cuda():
    reason = skip_reason(_case("cuda-contiguous-fp32-eager"))
    assert reason is not None and reason.startswith("CUDA not available")
    assert skip_reason(_case("cuda-channels_last-amp_fp16-compile_reduce_overhead")).startswith("CUDA not available")


def test_cpu_cases_run_here():
    assert skip_reason(_case("cpu-contiguous-fp32-eager", OptimizerSpec("sgd"))) is None
    assert skip_reason(_case("cpu-channels_last-amp_bf16-compile", OptimizerSpec("adam", "fused"))) is None


def test_a_case_is_written_and_parsed_in_one_place_and_round_trips():
    from lenet.variants import PHASES, Case, Phase, SelectionError, all_variants, parse_optimizer

    for variant in all_variants():
        for phase in PHASES:
            step = Phase(phase)
            case = Case(step, variant, 64, parse_optimizer("adam_fused") if step.uses_optimizer else None)
            assert Case.from_spec(case.spec()) == case
    bad = [
        ({"phase": "warp", "variant": "cpu-contiguous-fp32-eager", "batch_size": 8}, "phase 'warp'"),
        ({"phase": "forward_inference", "variant": "cpu-contiguous-fp32-eager", "batch_size": 0}, "batch size 0"),
        ({"phase": "forward_inference", "variant": "cpu-contiguous-fp32-eager", "batch_size": True}, "batch size"),
        ({"phase": "forward_inference", "variant": "cpu-contiguous-tf32-eager", "batch_size": 8}, "tf32"),
    ]
    for spec, message in bad:
        with pytest.raises(SelectionError, match=message):
            Case.from_spec(spec)


# --- the scope axis --------------------------------------------------------------------------------


def test_module_scope_keeps_the_ids_of_older_runs_and_step_scope_says_so():
    assert Variant("cpu", "contiguous", "fp32", "compile").id == "cpu-contiguous-fp32-compile"
    step = Variant("cpu", "contiguous", "fp32", "compile", "step")
    assert step.id == "cpu-contiguous-fp32-compile-step"
    assert parse_variant(step.id) == step and step.step_scope and step.is_compiled
    # naming the default scope is allowed, and reads as the id without it
    assert parse_variant("cpu-contiguous-fp32-compile-module").id == "cpu-contiguous-fp32-compile"
    graph = parse_variant("cuda-contiguous-fp32-cuda_graph-step")
    assert graph.is_captured and not graph.is_compiled and graph.step_scope
    ids = {v.id for v in all_variants()}
    assert {"cuda-contiguous-fp32-compile_reduce_overhead-step", "cuda-channels_last-tf32-cuda_graph-step"} <= ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpu-contiguous-fp32-eager-step", "eager variant compiles nothing, so it has no step scope"),
        ("cpu-contiguous-fp32-cuda_graph-step", "on cpu use compile-step"),
        ("cuda-contiguous-fp32-cuda_graph", "name it with the step scope"),
        ("cuda-contiguous-amp_fp16-compile-step", "GradScaler"),
        ("cpu-contiguous-fp32-compile-whole", "unknown scope 'whole'; choose from module, step"),
        ("cpu-contiguous-fp32-compile-step-x", "must have 4 or 5 parts"),
    ],
)
def test_a_scope_that_makes_no_sense_is_never_generated_and_naming_one_is_one_line(text, message):
    assert text not in {v.id for v in all_variants()}
    with pytest.raises(SelectionError, match=message) as error:
        parse_variant(text)
    assert "\n" not in str(error.value)


def test_step_scope_runs_only_the_phases_that_step():
    selection = build_selection("quick", variants="cpu-contiguous-fp32-compile-step,cpu-contiguous-fp32-eager")
    step_ids = {"cpu-contiguous-fp32-compile-step", "cpu-contiguous-fp32-eager"}
    assert {c.variant.id for c in selection.cases(Phase.TRAIN_STEP)} == step_ids
    assert {c.variant.id for c in selection.cases(Phase.OPTIMIZER_STEP)} == step_ids
    for phase in (Phase.FORWARD_INFERENCE, Phase.FORWARD_TRAIN, Phase.BACKWARD):
        assert {c.variant.id for c in selection.cases(phase)} == {"cpu-contiguous-fp32-eager"}


def test_globs_reach_the_step_scope_and_the_cuda_preset_measures_it():
    assert "cpu-contiguous-fp32-compile-step" in {v.id for v in select_variants(["cpu-contiguous-fp32-*"])}
    cuda = {v.id for v in build_selection("cuda").variants}
    assert {
        "cuda-contiguous-fp32-compile-step",
        "cuda-contiguous-fp32-compile_reduce_overhead-step",
        "cuda-contiguous-fp32-cuda_graph-step",
    } <= cuda


def test_adam_foreach_at_the_cpu_step_scope_is_skipped_with_the_reason():
    variant = parse_variant("cpu-contiguous-fp32-compile-step")
    reason = skip_reason(Case(Phase.TRAIN_STEP, variant, 2, OptimizerSpec("adam", "foreach")))
    assert reason is not None and "capturable" in reason and "adam_fused" in reason
    assert skip_reason(Case(Phase.TRAIN_STEP, variant, 2, OptimizerSpec("adam", "fused"))) is None
