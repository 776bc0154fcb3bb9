"""scripts/system.py: what it says about a machine, from literal /proc and /sys text."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lenet.cli.system import main
from lenet.stability import read_file
from lenet.system_report import OK, WARN, load_items, parse_process_stat, render, system_items, take_sample

QUIET_STAT = "cpu  1000 0 0 9000 0 0 0 0 0 0\ncpu0 500 0 0 4500 0 0 0 0\ncpu1 500 0 0 4500 0 0 0 0\n"
BUSY_STAT = "cpu  1180 0 0 9020 0 0 0 0 0 0\ncpu0 590 0 0 4510 0 0 0 0\ncpu1 590 0 0 4510 0 0 0 0\n"


class Machine:
    """/proc and /sys as literal text; /proc/stat and each process's stat advance at the one sleep."""

    def __init__(self, files, stats, processes):
        self.files, self.stats, self.processes, self.moment = files, stats, processes, 0

    def read(self, path):
        if path == "/proc/stat":
            return self.stats[self.moment]
        if path.startswith("/proc/") and path.endswith("/stat") and path.split("/")[2].isdigit():
            return self.processes[int(path.split("/")[2])][self.moment]
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def sleep(self, seconds):
        self.moment = 1


def process(pid, name, ticks):
    return f"{pid} ({name}) R 1 1 1 0 -1 4194304 102 0 0 0 {ticks} 0 0 0 20 0 1 0 110589 3133440 389"


def items_of(machine, environ, exists=lambda path: False):
    return system_items(
        machine.read, environ, 1.0, machine.sleep, lambda: list(machine.processes), exists, affinity=[0, 1]
    )


def test_a_busy_vm_with_default_malloc_gets_warnings_and_advice():
    machine = Machine(
        {
            "/proc/loadavg": "2.47 1.30 0.57 4/100 15764\n",
            "/proc/cpuinfo": "model name\t: Intel(R) Xeon(R) Processor\n",
            "/sys/devices/system/cpu/online": "0-1\n",
            "/sys/devices/system/cpu/isolated": "\n",
            "/proc/sys/kernel/randomize_va_space": "2\n",
            "/proc/meminfo": "MemTotal: 24684084 kB\nMemAvailable: 21195336 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        },
        [QUIET_STAT, BUSY_STAT],
        {
            42: [process(42, "python busy (x)", 100), process(42, "python busy (x)", 198)],
            7: [process(7, "idle", 5)] * 2,
        },
    )
    items = {item.topic.strip(): item for item in items_of(machine, {})}
    assert items["Load"].status == WARN and "2.47 on 2 CPUs" in items["Load"].value
    assert items["Other processes"].status == WARN and items["Other processes"].value.startswith("90.0%")
    assert items["busy process"].value == "pid 42 python busy (x): 98% of a CPU"
    assert items["Governor"].value.startswith("unavailable: ")
    assert items["Allocator"].status == WARN and "MALLOC_MMAP_THRESHOLD_" in items["Allocator"].advice
    assert items["ASLR"].value == "full" and items["Memory"].status == OK
    text = render(list(items.values()))
    assert "! Load" in text and "-> wait until other work is done" in text


def test_a_tuned_machine_passes():
    governors = {f"/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_governor": "performance\n" for n in (0, 1)}
    machine = Machine(
        {
            **governors,
            "/sys/devices/system/cpu/cpufreq/boost": "0\n",
            "/proc/loadavg": "0.05 0.1 0.1 1/90 5\n",
            "/proc/self/maps": "7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n",
        },
        [QUIET_STAT, QUIET_STAT.replace("9000", "9200").replace("4500", "4600")],
        {},
    )
    environ = {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
    items = items_of(machine, environ)
    assert [item.topic for item in items if item.status == WARN] == []
    assert {item.topic: item.value for item in items}["Allocator"] == "jemalloc (loaded in this process)"


def test_the_allocator_line_says_what_took_effect_not_what_was_asked():
    machine = Machine(
        {"/proc/self/maps": "7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/libc.so.6\n"}, [QUIET_STAT] * 2, {}
    )
    environ = {
        "LD_PRELOAD": "/no/such/libjemalloc.so.2",
        "MALLOC_MMAP_THRESHOLD_": "64M",  # glibc reads a decimal byte count and ignores this
        "MALLOC_TRIM_THRESHOLD_": "134217728",
        "MALLOC_TOP_PAD_": "67108864",
    }
    allocator = {item.topic: item for item in items_of(machine, environ)}["Allocator"]
    assert allocator.status == WARN
    assert "not a byte count, ignored by glibc: MALLOC_MMAP_THRESHOLD_=64M" in allocator.value
    assert "LD_PRELOAD names jemalloc but it is not loaded here" in allocator.value


SPIN_NAMED = """
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)  # PR_SET_NAME
print("named", flush=True)
end = time.monotonic() + 30
while time.monotonic() < end:
    pass
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")
def test_a_process_that_names_itself_with_a_line_break_and_an_escape_injects_neither(capsys):
    name = "\nALL GOOD\x1b[1m"
    spinner = subprocess.Popen([sys.executable, "-c", SPIN_NAMED, name], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout.readline() == "named\n"
        assert main(["--seconds", "0.2"]) == 0  # the whole command, whatever else is busy on the machine
        # The spinner's line, read from the real /proc: any tick it ran counts as busy, however loaded the machine.
        first = take_sample(read_file, lambda: [spinner.pid])
        time.sleep(1)
        second = take_sample(read_file, lambda: [spinner.pid])
    finally:
        spinner.kill()
        spinner.wait()
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nALL GOOD" not in out
    lines = [item.value for item in load_items(read_file, first, second, 1.0, ticks_per_second=1e-9)]
    assert f"pid {spinner.pid} \\x0aALL GOOD\\x1b[1m: " in " ".join(lines)  # prctl keeps 15 bytes: all of it


def test_a_process_name_may_hold_spaces_and_parentheses():
    assert parse_process_stat(process(9, "a) (b", 12)) == ("a) (b", 12)


def test_bad_seconds_are_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--seconds", "0"])
    assert raised.value.code == 2 and "--seconds 0 must be from 0.1 to 60" in capsys.readouterr().err
