"""How a benchmark process is started: allocator variables, pinning, and what a process records of both."""

import os
import subprocess
import sys

import pytest

from lenet.process_setup import GLIBC_TUNED, ProcessSetup, SetupError, describe, loaded_allocator, parse_pin

AFFINITY = sorted(os.sched_getaffinity(0))


def test_each_allocator_sets_only_its_own_variables():
    base = {"PATH": "/bin", "LD_PRELOAD": "/old/lib.so", "MALLOC_CONF": "narenas:1"}
    assert ProcessSetup("glibc").environment(base) == {"PATH": "/bin"}  # the caller's allocator settings go
    assert ProcessSetup("glibc-tuned").environment(base) == {"PATH": "/bin", "GLIBC_TUNABLES": GLIBC_TUNED}
    with pytest.raises(SetupError, match="allocator 'mimalloc': expected one of glibc, glibc-tuned"):
        ProcessSetup("mimalloc")


def test_a_missing_allocator_library_is_one_clear_error(monkeypatch):
    monkeypatch.setattr("lenet.process_setup.LIBRARY_DIRS", ("/nonexistent",))
    with pytest.raises(SetupError, match=r"libjemalloc is not installed .* apt-get install libjemalloc2"):
        ProcessSetup("jemalloc").environment({})


def test_pinning_takes_none_last_or_cpus_this_process_may_use():
    assert parse_pin("none") == () and parse_pin("") == ()
    assert parse_pin("last") == (AFFINITY[-1],)
    assert parse_pin(f" {AFFINITY[0]} ") == (AFFINITY[0],)
    with pytest.raises(SetupError, match="expected none, last, or CPU numbers"):
        parse_pin("half")
    with pytest.raises(SetupError, match="CPU 4096 is not one this process may use"):
        parse_pin("4096")


def test_the_allocator_is_read_from_the_memory_map(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10\n")
    assert loaded_allocator(maps) == "tcmalloc"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert loaded_allocator(maps) == "glibc"
    assert loaded_allocator(tmp_path / "missing") == "unknown"


def test_a_started_process_gets_and_records_its_allocator_and_affinity():
    setup = ProcessSetup("glibc-tuned", (AFFINITY[-1],))
    code = "import json; from lenet.process_setup import describe; print(json.dumps(describe()))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=setup.environment(),
        preexec_fn=setup.preexec(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == (
        f'{{"allocator": "glibc-tuned", "malloc_settings": {{"GLIBC_TUNABLES": "{GLIBC_TUNED}"}}, '
        f'"cpu_affinity": [{AFFINITY[-1]}]}}'
    )
    assert describe()["cpu_affinity"] == AFFINITY  # this process is left as it was
