"""``aggregate-events``: validate a JSON Lines batch, total it per user, load it exactly once.

This module is the command line: its arguments, its help and the exit code of an error;
batch.py runs it (scanner.py scans, db.py loads).
"""

from __future__ import annotations

import argparse
import os
import sys

from event_pipeline import __version__, cli
from event_pipeline.batch import (
    CONNECT_TIMEOUT_ENV,
    EXIT_CONFLICT,
    EXIT_DATABASE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_REJECTED,
    run,
    say,
)
from event_pipeline.scanner import InputError, default_workers

DEFAULT_CONNECT_TIMEOUT = 60.0
DEBUG_ENV = "EVENT_PIPELINE_DEBUG"
DEFAULT_MAX_REJECTED = 0.01


def _default_connect_timeout() -> float:
    raw = os.environ.get(CONNECT_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        return cli.number(0)(raw)
    except argparse.ArgumentTypeError:
        say(f"ignoring {CONNECT_TIMEOUT_ENV}={raw!r} (expected seconds >= 0)")
        return DEFAULT_CONNECT_TIMEOUT


EXIT_CODES = f"""exit codes:
  {EXIT_OK}  loaded, staged or committed; or already so with the same content (nothing changed)
  {EXIT_INTERNAL}  internal error
  2  usage error
  {EXIT_INPUT}  input missing, unreadable or empty (--allow-empty loads an empty batch)
  {EXIT_REJECTED}  too many rejected lines (of the whole batch for --commit); nothing loaded
  {EXIT_DATABASE}  database unreachable or failed; nothing loaded (the only one worth a retry)
  {EXIT_CONFLICT}  the batch id (or shard) is already loaded or staged from different content,
     or with another number of shards; nothing changed
  {EXIT_MISSING}  --commit: a shard is not staged yet; nothing loaded"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="aggregate-events",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Validate a JSON Lines batch of events, total session duration per user and load\n"
            "it into PostgreSQL exactly once (libpq variables PGHOST, PGPORT, PGUSER,\n"
            "PGPASSWORD, PGDATABASE). Three forms:\n"
            "  aggregate-events --input FILE --batch-id ID              load a whole batch\n"
            "  aggregate-events --input FILE --batch-id ID --shard I/N  stage shard I of N\n"
            "  aggregate-events --commit --batch-id ID --shards N       commit the N shards"
        ),
        epilog=EXIT_CODES,
    )
    parser.add_argument(
        "--input", metavar="FILE", help="JSON Lines file of events, or - for standard input"
    )
    parser.add_argument(
        "--batch-id",
        metavar="ID",
        required=True,
        help="loading the same content under the same id again is a no-op",
    )
    parser.add_argument(
        "--shard",
        type=cli.shard,
        metavar="I/N",
        help="stage the input as shard I (0..N-1) of N of the batch (see --commit)",
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="move the batch's staged shards into it, in one transaction (needs --shards)",
    )
    parser.add_argument(
        "--shards",
        type=cli.integer(1, cli.MAX_SHARDS),
        metavar="N",
        help="with --commit: how many shards the batch has",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="load an input without lines as an empty batch (otherwise exit 3)",
    )
    parser.add_argument(
        "--max-rejected-ratio",
        type=cli.number(0, 1),
        metavar="RATIO",
        help=(
            f"fail (and load nothing) above this share of rejected lines ({DEFAULT_MAX_REJECTED:g}"
            "); for a sharded batch, give it to --commit: it applies to the whole batch"
        ),
    )
    parser.add_argument(
        "--connect-timeout",
        type=cli.number(0),
        metavar="SECONDS",
        default=_default_connect_timeout(),
        help=(
            "keep retrying the connection for this many seconds "
            f"(default {DEFAULT_CONNECT_TIMEOUT:g}, or ${CONNECT_TIMEOUT_ENV})"
        ),
    )
    parser.add_argument(
        "--workers",
        type=cli.integer(1, 1024),
        metavar="N",
        default=default_workers(),
        help="scanner processes (standard input is read by one)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and total only; no database"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if not args.batch_id.strip() or not args.batch_id.isprintable():
        parser.error("--batch-id must be non-empty and printable")
    if args.commit:
        for given, name in ((args.input, "--input"), (args.shard, "--shard")):
            if given is not None:
                parser.error(f"--commit takes no {name}: it commits what the stages staged")
        if args.shards is None:
            parser.error("--commit needs --shards N (how many shards the batch has)")
        if args.dry_run:
            parser.error("--commit cannot be a --dry-run")
    else:
        if args.input is None:
            parser.error("--input FILE (or - for standard input) is required, unless --commit")
        if args.shards is not None:
            parser.error("--shards goes with --commit; a stage takes --shard I/N")
        if args.shard is not None and args.max_rejected_ratio is not None:
            parser.error(
                "--max-rejected-ratio applies to the whole batch: give it to --commit, not "
                "to a --shard stage"
            )
    if args.max_rejected_ratio is None:
        args.max_rejected_ratio = DEFAULT_MAX_REJECTED
    return args


def _database_error(exc: BaseException) -> bool:
    driver = sys.modules.get("psycopg2")  # imported only when the run used the database
    return driver is not None and isinstance(exc, driver.Error)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        say(str(exc))
        return EXIT_INPUT
    except KeyboardInterrupt:
        say("interrupted; nothing loaded")
        return 130
    except Exception as exc:
        from event_pipeline.connection import DatabaseUnavailable, first_line

        if isinstance(exc, DatabaseUnavailable):
            say(str(exc))
            return EXIT_DATABASE
        if _database_error(exc):
            say(f"database error, batch {args.batch_id} not loaded: {first_line(exc)}")
            return EXIT_DATABASE
        if os.environ.get(DEBUG_ENV):
            import traceback

            traceback.print_exc()
        say(f"internal error, batch {args.batch_id} not loaded: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
