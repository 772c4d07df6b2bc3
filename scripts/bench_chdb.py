#!/usr/bin/env python3
"""`make bench`'s second reference: the same job done by chDB, embedded ClickHouse.

Usage: bench_chdb.py FILE TABLE. Reads the JSON Lines batch with ClickHouse's ``file(...,
'JSONEachRow', structure)`` (typed columns, as bench_duckdb.py's ``read_json``; ClickHouse's
default input settings, none of our other rules, no rejected lines kept), totals session
duration and events per user with ``GROUP BY``, and COPYs the result (ClickHouse's
TabSeparated output, passed through as is) into TABLE of the PostgreSQL named by the libpq
variables, in one transaction (the table is created if missing, emptied first). Prints the row
count.
"""

from __future__ import annotations

import io
import sys

import chdb
from bench_copy import copy_totals

QUERY = """
SELECT userId, sum(sessionDuration), count()
FROM file({path:String}, 'JSONEachRow', 'timestamp DateTime64(3, ''UTC''), userId String,
    eventType String, productId String, sessionDuration Int64')
GROUP BY userId
SETTINGS date_time_input_format = 'best_effort'
"""


def main() -> int:
    path, table = sys.argv[1], sys.argv[2]
    result = chdb.query(QUERY, "TabSeparated", params={"path": path})  # type: ignore[no-untyped-call,unused-ignore]
    data: bytes = result.bytes()
    # TabSeparated escapes with a backslash; bench users need no escaping: checked anyway.
    if b"\\" in data:
        raise SystemExit("bench_chdb: a user id needs escaping")
    copy_totals(table, io.BytesIO(data), "bench-chdb")
    print(data.count(b"\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
