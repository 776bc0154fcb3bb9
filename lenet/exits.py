"""The one exit-status contract of every command in scripts/ (docs/exit-codes.md is its table).

| status | meaning |
| --- | --- |
| 0 | done |
| 1 | a regression is confirmed (compare.py, ab.py), and nothing else ever |
| 2 | bad input or options: usage, a malformed URL, a missing path or not a saved run, nothing to report |
| 3 | a resource cannot be used: the database, an output (folder, file, stdout: full disk, closed pipe), /proc |
| 4 | interrupted (Ctrl-C) or done in part: what was reported done is done, running again finishes the job |
| 5 | ``--fail-on-inconclusive`` and some verdict is inconclusive (compare.py, ab.py) |
| 6 | ``--fail-on-improvement`` and some benchmark improved (compare.py, ab.py) |
| 70 | an internal error (a bug): one line to report, never a traceback (sysexits' EX_SOFTWARE) |

:func:`command` wraps every command's ``main``: its output passes through the one
redaction (:mod:`lenet.redact`), and whatever escapes ``main`` (a closed pipe, a full
disk, Ctrl-C or SIGTERM, a bug) becomes one ``error:`` line and its status here, never a
traceback and never 1: Python's own status for a crash, 1, would read as "regression".
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from lenet.redact import redacted_output

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
EXIT_UNUSABLE = 3
EXIT_INTERRUPTED = 4
EXIT_INCONCLUSIVE = 5
EXIT_IMPROVEMENT = 6
EXIT_NO_DIFFERENCE = 7  # culprit.py: the good and bad ends do not differ, so there is nothing to find
EXIT_INTERNAL = 70
CONTRACT = (
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_BAD_INPUT,
    EXIT_UNUSABLE,
    EXIT_INTERRUPTED,
    EXIT_INCONCLUSIVE,
    EXIT_IMPROVEMENT,
)

Main = Callable[[list[str] | None], int]


def command(main: Main) -> Main:
    """``main`` under the contract: redacted output, stdout flushed inside, every escape mapped to a status."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        arguments = sys.argv[1:] if argv is None else list(argv)
        with redacted_output(arguments), terminated_as_interrupted():
            try:
                status = main(argv)
                sys.stdout.flush()  # a full disk or a closed pipe shows here, not at interpreter exit
                return status
            except KeyboardInterrupt:
                _say("interrupted; what was reported done is done, and running the command again finishes the job")
                return EXIT_INTERRUPTED
            except OSError as error:
                return _output_failed(error)
            except Exception as error:  # noqa: BLE001 - a crash's own status, 1, would read as "regression"
                return _internal_error(error)

    return run


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, ``timeout``) raises KeyboardInterrupt, as Ctrl-C does, so that every ``finally``
    runs: a command's git worktrees are removed and its child processes killed. Only the main thread may set a
    handler; elsewhere (a command called from a worker thread) SIGTERM keeps its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr itself is gone: the status still tells
        print(f"error: {line}", file=sys.stderr, flush=True)


def _output_failed(error: OSError) -> int:
    """A write that failed (stdout to a full disk or a closed pipe, an output folder): one line, status 3."""
    if isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE:
        _silence_stdout()  # the reader left: say so on stderr, and let nothing retry the write at exit
        _say("the output was closed before everything was written (a closed pipe)")
        return EXIT_UNUSABLE
    if error.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS):
        _silence_stdout()
    where = f" ({error.filename})" if error.filename else ""
    _say(f"cannot write or read{where}: {error.strerror or error}")
    return EXIT_UNUSABLE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail again with a traceback."""
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured in tests): nothing to silence
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def _internal_error(error: BaseException) -> int:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    message = " ".join(str(error).split())[:300]
    _say(
        f"internal error, nothing was decided: {type(error).__name__}: {message}{where}; "
        "please report it with the command line"
    )
    return EXIT_INTERNAL
