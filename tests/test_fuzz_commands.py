"""Fuzzing the commands that read saved runs and databases (report, compare, publish, baseline) with Hypothesis.

Each example is a saved-run file (a valid run mutated field by field: hostile strings, lone
surrogates, control characters, odd numbers and dates, deep nesting, truncated or non-UTF-8
bytes) under an odd file name, and a database URL whose password holds what breaks masking
(``/``, ``@``, spaces, quotes, percent signs) in one of the forms libpq reads (URL as typed,
percent-encoded, keywords, a query parameter, or the ``LENET_DB_URL`` twin). Every command
must then end with no traceback, a status from the contract (lenet/exits.py, never 70), and
no trace of the password in anything it printed.

CI runs a fixed set (``derandomize``: the same examples every run, about 40 s in all on a busy 2-core VM).
``LENET_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz_commands.py`` is the long, random run, with
Hypothesis' database of examples in ``.hypothesis/`` (a failure found is tried first next time);
``LENET_FUZZ_LOG=FILE`` appends one line per example there, to follow a long run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

hypothesis = pytest.importorskip("hypothesis")
psycopg = pytest.importorskip("psycopg")

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lenet.cli.baseline import main as baseline_main  # noqa: E402
from lenet.cli.compare import main as compare_main  # noqa: E402
from lenet.cli.publish import main as publish_main  # noqa: E402
from lenet.cli.report import main as report_main  # noqa: E402
from lenet.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_REGRESSION, EXIT_UNUSABLE  # noqa: E402

pytest_plugins = ("postgres_server",)

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "tests/fixtures/runs/lenet-cpu/Linux-CPython-3.11-64bit/0001_5adf536_20261127_121749.json"
BASE = json.loads(RUN.read_text())
BASE["benchmarks"] = BASE["benchmarks"][:4]  # four are enough to reach every reader, and keep examples fast
# The good run beside each hostile one: eight benchmarks, so never a copy of an unchanged BASE.
GOOD = json.dumps({**BASE, "benchmarks": json.loads(RUN.read_text())["benchmarks"][:8]})
# The password's ends: markers no command prints by chance, so any piece of a leak shows.
HEAD, TAIL = "ZqX7", "Wv9K"
ALLOWED = {EXIT_OK, EXIT_BAD_INPUT, EXIT_UNUSABLE, EXIT_INTERRUPTED}

EXAMPLES = int(os.environ.get("LENET_FUZZ_EXAMPLES", "0"))
LOG = os.environ.get("LENET_FUZZ_LOG")
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None, print_blob=True
)
settings.register_profile("long", deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)


def examples(in_ci: int) -> settings:
    """The profile for one property: ``in_ci`` fixed examples (sized to its cost), or the long run's count."""
    return settings(settings.get_profile("long" if EXAMPLES else "ci"), max_examples=EXAMPLES or in_ci)


def log(name: str) -> None:
    if LOG:
        with open(LOG, "a") as handle:
            handle.write(name + "\n")


# --- what is generated ----------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "\ud800",
            "a\udcffb",
            "\x00",
            "\n\x1b[1mALL GOOD",
            "\u202eevil",
            "",
            " ",
            "../../etc/passwd",
            "postgresql://u:p@h/d",
            "9999-12-31T23:00:00-05:00",
            "10000-01-01T00:00:00",
            "0001-01-01T00:00:00+14:00",
            "2026-02-30T00:00:00",
            "NaN",
            "1e999",
            "x" * 5000,
        ]
    ),
)
ODD_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
DEPTHS = st.sampled_from([3, 150, 300, 1100, 5000])
LEAF = st.one_of(HOSTILE_TEXT, ODD_NUMBERS)
VALUES = st.one_of(
    LEAF,
    st.lists(LEAF, max_size=3),
    st.dictionaries(HOSTILE_TEXT, LEAF, max_size=3),
    DEPTHS.map(lambda depth: ("__deep__", depth)),
)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document a mutation can hit: each key of each object, each item of each list."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


PATHS = [path for path in paths_of(BASE) if path]


def mutate(document: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    holder: Any = document
    for step in path[:-1]:
        holder = holder[step]
    if delete and isinstance(holder, dict):
        holder.pop(path[-1], None)
    else:
        holder[path[-1]] = value


def serialize(document: dict[str, Any]) -> str:
    """JSON as Python's json writes it (lone surrogates as \\ud800, NaN as NaN), with deep nests spliced in."""
    deep: list[int] = []

    def placeholder(value: Any) -> Any:
        if isinstance(value, tuple) and value[:1] == ("__deep__",):
            deep.append(value[1])
            return f"__deep_{len(deep) - 1}__"
        if isinstance(value, dict):
            return {k: placeholder(v) for k, v in value.items()}
        if isinstance(value, list):
            return [placeholder(v) for v in value]
        return value

    text = json.dumps(placeholder(document))
    for index, depth in enumerate(deep):
        text = text.replace(f'"__deep_{index}__"', "[" * depth + "]" * depth, 1)
    return text


@st.composite
def run_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, contents) of a saved run made hostile."""
    document = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        try:
            mutate(document, path, draw(VALUES), draw(st.booleans()))
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced the holder
            continue
    data = serialize(document).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "latin1", "empty", "bom"]))
    if damage == "truncate":
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    elif damage == "latin1":
        data = data.replace(b"cpu", b"\xe9\xff", 1)
    elif damage == "empty":
        data = b""
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    stem = draw(
        st.one_of(
            st.just("run"),
            st.text(alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), max_size=30),
            st.sampled_from(["run-\udcff\udcfe", "a\nb", "\x1b[31mred", " ", "-rf", "--db"]),
        )
    )
    return stem, data


PASSWORD_MIDDLE = st.text(alphabet="ab /@:%'=?#&+\\\"", max_size=8)


@st.composite
def database_urls(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(connection string, password, whether to pass it through LENET_DB_URL), on a port nothing listens on."""
    password = HEAD + draw(PASSWORD_MIDDLE) + TAIL
    port = draw(st.sampled_from([_free_port(), 1]))
    form = draw(st.sampled_from(["typed", "encoded", "keywords", "query"]))
    if form == "typed":
        url = f"postgresql://bench:{password}@127.0.0.1:{port}/lenet?connect_timeout=2"
    elif form == "encoded":
        url = f"postgres://bench:{quote(password, safe='')}@127.0.0.1:{port}/lenet?connect_timeout=2"
    elif form == "keywords":
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        url = f"host=127.0.0.1 port={port} user=bench password='{quoted}' connect_timeout=2"
    else:
        url = f"postgresql://bench@127.0.0.1:{port}/lenet?connect_timeout=2&password={quote(password, safe='')}"
    return url, password, draw(st.booleans())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def any_run_file_and_url(in_ci: int) -> Callable[[Callable[..., None]], Any]:
    """A property over (run file, database URL) pairs: ``case`` and ``database``, with examples() for ``in_ci``."""

    def decorate(test: Callable[..., None]) -> Any:
        return examples(in_ci)(hypothesis.given(run_files(), database_urls())(test))

    return decorate


# --- running a command ------------------------------------------------------------------------


def run(main: Callable[[list[str] | None], int], argv: list[str], env_url: str | None = None) -> tuple[int, str]:
    """The command's status and all it printed; stdout and stderr are UTF-8 streams that refuse what is not."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    saved = os.environ.get("LENET_DB_URL")
    if env_url is not None:
        os.environ["LENET_DB_URL"] = env_url
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = main(argv)
            except SystemExit as exit_:  # argparse: usage errors are 2
                status = exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    finally:
        if saved is None:
            os.environ.pop("LENET_DB_URL", None)
        else:
            os.environ["LENET_DB_URL"] = saved
    return status, out.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]


def check(status: int, output: str, allowed: set[int], password: str | None = None) -> None:
    try:
        assert "Traceback" not in output, output
        assert status in allowed, (status, output)
        if password is not None:
            for piece in (HEAD, TAIL, password, quote(password, safe="")):
                assert piece not in output, (piece, output)
    except AssertionError as failure:
        log(f"FAILED {failure!r}"[:2000])  # a long run that is stopped early still shows what it found
        raise


def db_args(url: str, via_environment: bool) -> tuple[list[str], str | None]:
    return (["--db"], url) if via_environment else (["--db", url], None)


@contextlib.contextmanager
def written(stem: str, data: bytes) -> Iterator[tuple[Path, Path]]:
    """A fresh folder holding the hostile run under its odd name (and a good run beside it), and its file."""
    with tempfile.TemporaryDirectory() as folder:
        runs = Path(folder) / "runs"
        runs.mkdir()
        name = os.fsencode(stem)[:200] + b".json"
        path = Path(os.fsdecode(os.path.join(os.fsencode(runs), name)))
        path.write_bytes(data)
        (runs / "good.json").write_text(GOOD)
        yield runs, path


# --- the properties ---------------------------------------------------------------------------


@any_run_file_and_url(20)
def test_report_survives_any_run_file_and_url(case, database):
    log("report")
    (stem, data), (url, password, via_environment) = case, database
    with written(stem, data) as (runs, _path):
        output = runs.parent / "report"
        status, text = run(report_main, [str(runs), "-o", str(output), "--formats", "md,csv", "-q", "--no-traces"])
        check(status, text, ALLOWED)
        argv, env = db_args(url, via_environment)
        check(*run(report_main, [*argv, "-o", str(output) + "-db", "-q", "--no-traces"], env), ALLOWED, password)


@any_run_file_and_url(60)
def test_compare_survives_any_run_file_and_url(case, database):
    log("compare")
    (stem, data), (url, password, _) = case, database
    with written(stem, data) as (_, path):
        check(*run(compare_main, [str(RUN), str(path)]), ALLOWED | {EXIT_REGRESSION})
        check(*run(compare_main, [str(path), str(RUN), "--allow-mismatch"]), ALLOWED | {EXIT_REGRESSION})
    check(*run(compare_main, [url, str(RUN)]), ALLOWED, password)  # a keyword string is a path there: 2


@pytest.fixture(scope="module")
def fuzz_db(postgres_server):
    """One database for every example of the publish property (function-scoped fixtures do not mix with @given)."""
    with postgres_server.fresh_database("t_fuzz_publish") as url:
        yield url


@any_run_file_and_url(100)
def test_publish_survives_any_run_file_and_url(fuzz_db, case, database):
    log("publish")
    (stem, data), (url, password, via_environment) = case, database
    with written(stem, data) as (_runs, path):
        check(*run(publish_main, ["--db", fuzz_db, "-q", str(path)]), ALLOWED)
        argv, env = db_args(url, via_environment)
        check(*run(publish_main, [*argv, "-q", str(path)], env), ALLOWED, password)
    # What was published reads back: the database never holds a row that breaks a reader.
    check(*run(baseline_main, ["list", "--db", fuzz_db]), {EXIT_OK})


@any_run_file_and_url(100)
def test_baseline_survives_any_run_file_and_url(case, database):
    log("baseline")
    (stem, data), (url, password, via_environment) = case, database
    with written(stem, data) as (runs, path):
        check(*run(baseline_main, ["--root", str(runs.parent / "baselines"), "promote", str(path)]), ALLOWED)
        check(*run(baseline_main, ["--root", str(runs.parent / "baselines"), "list"]), ALLOWED)
    argv, env = db_args(url, via_environment)
    check(*run(baseline_main, ["list", *argv], env), ALLOWED, password)
