"""Callgrind's client requests that switch instrumentation, from inside the counted process.

Callgrind started with ``--instr-atstart=no`` runs a process several times faster until it is told
to instrument: importing torch, building a case and warming it up then cost a fraction of what
they cost instrumented, and only the counted calls pay full price. Torch's own hooks
(``torch._C._valgrind_toggle``) switch *collection*, not instrumentation, so a process started
that way would count nothing; instrumentation is switched by ``CALLGRIND_START_INSTRUMENTATION``
and ``CALLGRIND_STOP_INSTRUMENTATION``, macros of valgrind's ``callgrind.h`` that compile to a
marker instruction sequence. They are compiled here into a tiny shared library, loaded with ctypes.

The dump-numbering bug, and how this design avoids it. Switching instrumentation on resets
callgrind's running costs to zero, but not the costs it remembered at its last dump, and a dump
writes "now minus last dump". So once any dump was written, the first dump after a switch is negative, read as
unsigned (about 1.8e19). An earlier design switched per case with ``callgrind_control -i on`` and
took each case's first dump, numbered as it expected, for the probe that sizes its repeats: from
the second case on, that dump was the wrapped one, every repeat was sized to one call, and counts
of one run were taken at different schedules (which changes them: ``lenet.instructions``). Here
:meth:`ClientRequests.instrument` dumps once right after switching on, a dump nobody reads, so the
next dump counts from the switch; the counter finds the number of each dump it wrote by looking
rather than by predicting it; and a total at or above 2**63 is refused as a count, never used.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

SOURCE = r"""
#include <valgrind/callgrind.h>
void lenet_instrumentation(int on) {
    if (on) { CALLGRIND_START_INSTRUMENTATION; } else { CALLGRIND_STOP_INSTRUMENTATION; }
}
void lenet_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""
REBASE_LABEL = "instrumentation switched on"  # the dump written right after the switch: never a count
BUILD_SECONDS = 60.0
# Valgrind processes per counting run (lenet.instructions.environment_workers), set by runs that count side by side.
WORKERS_VARIABLE = "LENET_INSTRUCTIONS_WORKERS"


def build(folder: Path) -> tuple[Path | None, str | None]:
    """Compile the client requests into ``folder``: (the library, None), or (None, why it could not be built)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (cc) to build callgrind's client requests"
    source, library = folder / "callgrind_requests.c", folder / "callgrind_requests.so"
    source.write_text(SOURCE)
    command = [compiler, "-O1", "-shared", "-fPIC", "-o", str(library), str(source)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"building callgrind's client requests failed: {error}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"building callgrind's client requests failed (valgrind/callgrind.h missing?): {last}"
    return library, None


class ClientRequests:
    """The compiled requests, in the process callgrind runs; outside valgrind each request does nothing."""

    def __init__(self, library: Path) -> None:
        self._library = ctypes.CDLL(str(library))
        self._library.lenet_instrumentation.argtypes = [ctypes.c_int]
        self._library.lenet_dump.argtypes = [ctypes.c_char_p]

    def instrument(self, on: bool) -> None:
        """Switch instrumentation on (then re-base the next dump: see the module's docstring) or off."""
        self._library.lenet_instrumentation(1 if on else 0)
        if on:
            self.dump(REBASE_LABEL)

    def dump(self, label: str) -> None:
        self._library.lenet_dump(label.encode())
