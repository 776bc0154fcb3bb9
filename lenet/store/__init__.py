"""Where saved runs live beyond one machine's files: a shared PostgreSQL history.

pytest-benchmark's file storage under ``results/`` stays the default. A team with
runners on several machines publishes each saved run into PostgreSQL
(:mod:`lenet.store.publish`) and reads back only what a report selects
(:mod:`lenet.store.query`), as the same pytest-benchmark-shaped documents the
file loader reads. :mod:`lenet.store.postgres` connects and turns every failure
into one line with an exit code; :mod:`lenet.store.schema` creates and migrates
the tables. psycopg is imported only by these modules, so the file path of the
harness never needs it. docs/database.md says how to run a shared server.
"""
