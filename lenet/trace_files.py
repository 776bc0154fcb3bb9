"""The files of a trace folder: names and schemas that the recorder writes and the report reads.

Kept apart from ``lenet.profiling`` (which imports torch) so that ``lenet.analysis`` reads
traces without importing torch.
"""

from __future__ import annotations

OPERATORS_SCHEMA = "lenet-bench-operators/1"
PROFILE_SCHEMA = "lenet-bench-profile/1"
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")  # what tensorboard_trace_handler writes
PROFILE_FILE = "profile.json"  # what was recorded: case, torch version, settings, sizes, errors
OPERATORS_FILE = "operators.json"  # per-operator totals over the recorded steps
OPERATORS_CSV = "operators.csv"  # the same table for spreadsheets
OUR_FILES = (PROFILE_FILE, OPERATORS_FILE, OPERATORS_CSV)


def is_trace_file(name: str) -> bool:
    return name.endswith(TRACE_SUFFIXES)


# The per-operator table's columns, in file order; the per-step ones are totals the report divides by steps.
OPERATOR_KEYS = ("name", "kind", "input_shapes")
OPERATOR_PER_STEP = (
    "calls",
    "self_cpu_us",
    "cpu_total_us",
    "self_device_us",
    "device_total_us",
    "self_cpu_memory_bytes",
    "cpu_memory_bytes",
    "self_device_memory_bytes",
    "device_memory_bytes",
    "flops",
)
OPERATOR_COLUMNS = (*OPERATOR_KEYS, *OPERATOR_PER_STEP)
