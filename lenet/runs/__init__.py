"""One home for a saved run: typed, checked once where it is read, the same from files and PostgreSQL.

Data flows one way through this package::

    pytest-benchmark JSON file ──┐
                                 ├─> Run (model.py: Run, Result, Stats, Record) ─> to_frame (frame.py) ─> analysis
    PostgreSQL columns ──────────┘

* :mod:`lenet.runs.record`: the typed, versioned record the suites write into ``extra_info``;
* :mod:`lenet.runs.model`: ``Run``, ``Result`` and ``Stats``, and the one table of field checks
  every reader applies (:mod:`lenet.runs.checks`);
* :mod:`lenet.runs.files`: pytest-benchmark storage folders (any upstream version);
* :mod:`lenet.runs.postgres`: the shared history (connection, schema, read, write);
* :mod:`lenet.runs.source`: ``open_source(text)``: a folder, a file or a ``postgresql://`` URL,
  each answering ``runs(filter)``;
* :mod:`lenet.runs.frame`: ``to_frame(runs)``, the only place a run is flattened for pandas;
* :mod:`lenet.runs.runset`: ``RunSet``, what a source gives (runs, problems, notes, their frame).

Nothing here imports :mod:`lenet.analysis` or :mod:`lenet.cli`. This ``__init__`` imports nothing,
so the measuring side can import the record without pandas or psycopg.
"""
