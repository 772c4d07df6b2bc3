"""What both reference engines of `make bench` end with: their per-user totals COPYed into a
table of the PostgreSQL named by the libpq variables, in one transaction (the table is created
if missing, emptied first), as aggregate-events commits its own."""

from __future__ import annotations

from typing import IO

import psycopg2


def copy_totals(table: str, data: IO[str] | IO[bytes], application: str) -> None:
    """COPY tab-separated (user_id, total_session_duration, event_count) rows into table."""
    conn = psycopg2.connect("", application_name=application)
    with conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (user_id text PRIMARY KEY,"
            " total_session_duration bigint NOT NULL, event_count bigint NOT NULL)"
        )
        cur.execute(f"TRUNCATE {table}")
        cur.copy_expert(f"COPY {table} FROM STDIN", data)
    conn.close()
