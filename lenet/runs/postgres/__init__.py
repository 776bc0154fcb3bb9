"""The shared PostgreSQL history (docs/database.md): connection, schema, read (columns -> Run), write.

pytest-benchmark's file storage under ``results/`` stays the default. A team with runners on
several machines publishes each saved run here (:mod:`.write`) and reads back only what a
report selects (:mod:`.read`), as the same :class:`lenet.runs.model.Run` the file reader makes.
:mod:`.connection` connects and turns every failure into one line with an exit code;
:mod:`.schema` creates and migrates the tables. psycopg is imported only by these modules, so
the file path of the harness never needs it.
"""
