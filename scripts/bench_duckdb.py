#!/usr/bin/env python3
"""`make bench`'s reference: the same job done by DuckDB (requirements-bench.txt).

Usage: bench_duckdb.py FILE TABLE. Reads the JSON Lines batch with DuckDB's ``read_json``
(typed columns: a value of the wrong type is an error; DuckDB checks types only, none of our
other rules, and keeps no rejected lines), totals session duration and events per user with
``GROUP BY``, and COPYs the result into TABLE of the PostgreSQL named by the libpq variables,
in one transaction (the table is created if missing, emptied first). Prints the row count.
"""

from __future__ import annotations

import io
import sys

import duckdb
from bench_copy import copy_totals

QUERY = """
SELECT userId, sum(sessionDuration)::BIGINT, count(*)
FROM read_json(?, format = 'newline_delimited', columns = {
    'timestamp': 'TIMESTAMPTZ', 'userId': 'VARCHAR', 'eventType': 'VARCHAR',
    'productId': 'VARCHAR', 'sessionDuration': 'BIGINT'})
GROUP BY userId
"""


def main() -> int:
    path, table = sys.argv[1], sys.argv[2]
    relation = duckdb.sql(QUERY, params=[path])
    assert relation is not None, "a SELECT always gives a relation"
    rows = relation.fetchall()
    text = io.StringIO()
    for user, total, count in rows:  # bench users need no COPY escaping; checked anyway
        if any(c in user for c in "\t\n\\\r"):
            raise SystemExit(f"bench_duckdb: user id needs escaping: {user!r}")
        text.write(f"{user}\t{total}\t{count}\n")
    text.seek(0)
    copy_totals(table, text, "bench-duckdb")
    print(len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
