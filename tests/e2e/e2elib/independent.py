"""Per-user totals of a batch computed without the aggregator: regenerate, then sum in Python.

The generator is deterministic (same seed, count and user pool give the same bytes), and the
workflow seeds it with the Adler-32 checksum of the batch id (the workflow name), so the batch a
workflow loaded can be rebuilt here and summed with nothing but json and a dict.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path


def seed_of(batch_id: str) -> int:
    """sprig.adler32sum(workflow.name), as the WorkflowTemplate computes it."""
    return zlib.adler32(batch_id.encode())


@functools.cache  # a batch is recomputed once per check session (read-only for callers)
def totals(batch_id: str, count: int, users: int) -> Counter[str]:
    generate = Path(sys.executable).with_name("generate-events")
    with tempfile.TemporaryDirectory(prefix="esp-e2e-batch-") as tmp:
        out = Path(tmp) / "events.jsonl"
        subprocess.run(
            [str(generate), "--count", str(count), "--users", str(users),
             "--seed", str(seed_of(batch_id)), "--output", str(out), "--quiet"],
            check=True, timeout=600,
        )  # fmt: skip
        sums: Counter[str] = Counter()
        with out.open() as fh:
            for line in fh:
                event = json.loads(line)
                sums[event["userId"]] += int(event["sessionDuration"])
        return sums
