"""The table of rules (rules.RULES) is the one source: the docs show it, and the msgspec types
that restate its limits carry them (test_validation.py, test_blocks.py and test_fastscan.py run
its examples through the scanner, the block path and the C fast path)."""

from __future__ import annotations

from pathlib import Path

import msgspec
from event_pipeline import blocks, decoding, rules

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def test_the_docs_show_the_table() -> None:
    table = rules.markdown_table()
    assert table in DOCS.read_text(), (
        f"docs/pipeline.md, section 'Bad input', must hold rules.markdown_table():\n{table}"
    )


def test_every_rule_has_examples() -> None:
    for rule in rules.RULES:
        assert rule.examples, rule.input
        accepted = {reason is None for _case, reason in rule.examples}
        if not rule.result.startswith("accepted"):  # a row of rejections shows only those
            assert accepted == {False}, rule.input
        elif rule.result == "accepted":
            assert accepted == {True}, rule.input


def _limits(struct: type[msgspec.Struct]) -> dict[str, tuple[object, ...]]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    limits: dict[str, tuple[object, ...]] = {}
    for field in info.fields:
        kind = field.type
        if isinstance(kind, msgspec.inspect.StrType):
            limits[field.name] = ("str", kind.min_length, kind.max_length)
        elif isinstance(kind, msgspec.inspect.IntType):
            limits[field.name] = ("int", kind.ge, kind.le)
        else:
            limits[field.name] = (type(kind).__name__,)
    return limits


def test_the_msgspec_types_carry_the_schema() -> None:
    ids = ("str", 1, rules.MAX_ID_CHARS)
    duration = ("int", 0, rules.MAX_SESSION_DURATION)
    expected = {
        "userId": ids,
        "eventType": ids,
        "productId": ids,
        "sessionDuration": duration,
    }
    for struct, timestamp in (
        (decoding.Event, ("str", None, None)),
        (blocks.BlockEvent, ("DateTimeType",)),
    ):
        limits = _limits(struct)
        assert tuple(limits) == rules.FIELDS, struct
        assert limits == {"timestamp": timestamp, **expected}, struct
