"""The generator's C loop (event_pipeline._fastgen) writes exactly the Python loop's bytes."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from types import ModuleType

import pytest
from event_pipeline import generate
from needs import unavailable


@pytest.fixture(scope="module")
def fastgen() -> ModuleType:
    try:
        from event_pipeline import _fastgen
    except ImportError as exc:
        unavailable(f"the C extension event_pipeline._fastgen is not built: {exc}")
    return _fastgen


def test_extension_is_built(fastgen: ModuleType) -> None:
    """In CI the generator must not silently fall back to its Python loop."""
    assert generate._fastgen is fastgen


def python_chunk(
    monkeypatch: pytest.MonkeyPatch, pools: generate.Pools, seed: int, index: int, n: int
) -> bytes:
    with monkeypatch.context() as patch:
        patch.setattr(generate, "_fastgen", None)
        return generate.make_chunk(pools, seed, index, n)


@pytest.mark.parametrize(
    ("seed", "users", "start"),
    [
        (1, 10_000, None),
        (7, 1, None),
        (-3, 3, datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (42, 200_000, datetime(2024, 2, 28, 23, 0, tzinfo=UTC)),
        (5, 600_000, None),  # 60-bit draws
    ],
)
def test_chunks_are_the_python_loops_bytes(
    fastgen: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    users: int,
    start: datetime | None,
) -> None:
    pools = generate.build_pools(seed, users, start)
    assert pools.packed
    rng = random.Random(seed)
    for index in (0, 1, rng.randrange(2, 1000)):
        for n in (0, 1, 17, generate.CHUNK_EVENTS):
            c = generate.make_chunk(pools, seed, index, n)
            assert c == python_chunk(monkeypatch, pools, seed, index, n), (index, n)
            assert c.count(b"\n") == n


def test_time_stops_at_the_end_of_the_window(
    fastgen: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More events than the window holds: both loops hold the last second at .999."""
    pools = generate.build_pools(3, 50)
    n = generate.CHUNK_EVENTS * 3
    c = generate.make_chunk(pools, 3, 2, n)
    assert c == python_chunk(monkeypatch, pools, 3, 2, n)
    assert c.rstrip(b"\n").rsplit(b"\n", 1)[1].startswith(b'{"timestamp":"')
    assert c.count(b'.999Z"') > generate.CHUNK_EVENTS // 2


def test_make_events_checks_its_arguments(fastgen: ModuleType) -> None:
    pools = generate.build_pools(1, 10)
    prefixes = generate._packed(['{"timestamp":"2026-01-01T00:00:00'])
    draw_bits = 37 + (len(pools.user_table) - 1).bit_length()
    assert fastgen.make_events(b"", 0, draw_bits, 0, *prefixes, *pools.packed) == b""
    with pytest.raises(ValueError, match="n \\* 8 bytes"):
        fastgen.make_events(b"1234567", 1, draw_bits, 0, *prefixes, *pools.packed)
    with pytest.raises(ValueError, match="0 <= ms <= 999"):
        fastgen.make_events(b"", 0, draw_bits, 1000, *prefixes, *pools.packed)
    with pytest.raises(ValueError, match="users: at least"):
        fastgen.make_events(b"", 0, draw_bits + 1, 0, *prefixes, *pools.packed)
    short = list(pools.packed)
    short[1] = short[1][:-8]  # one millisecond too few
    with pytest.raises(ValueError, match="millis: at least 1000 spans"):
        fastgen.make_events(b"", 0, draw_bits, 0, *prefixes, *short)
    outside = list(pools.packed)
    outside[0] = outside[0][: -generate.PACK_SPARE]  # no spare bytes after the last span
    with pytest.raises(ValueError, match=r"millis: span 99\d is outside its arena"):
        fastgen.make_events(b"", 0, draw_bits, 0, *prefixes, *outside)
