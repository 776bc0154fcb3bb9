"""Machine info and its fingerprint."""

import torch

from lenet.machine import FINGERPRINT_FIELDS, collect, differences, fingerprint


def test_collect_records_versions_threads_and_devices():
    info = collect()
    assert info["torch_version"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["cpu_count"] >= 1 and info["cpu_model"]
    assert (info["gpu_name"] is None) == (not torch.cuda.is_available())
    assert set(info["fingerprint_fields"]) == set(FINGERPRINT_FIELDS)
    assert info["fingerprint"] == fingerprint(info["fingerprint_fields"])


def test_fingerprint_is_stable_and_order_independent():
    fields = {"cpu_model": "Xeon", "torch_threads": 2}
    assert fingerprint(fields) == fingerprint(dict(reversed(list(fields.items()))))
    assert len(fingerprint(fields)) == 12


def test_fingerprint_changes_with_what_changes_timings():
    fields = collect()["fingerprint_fields"]
    for name, other in (("torch_threads", 999), ("torch_version", "0.0.0"), ("gpu_name", "Some GPU")):
        assert fingerprint({**fields, name: other}) != fingerprint(fields), name


def test_differences_names_each_field_that_differs():
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}
