"""The content digest: the same rows give the same digest whatever their order; any row that
would load differently changes it."""

from __future__ import annotations

from event_pipeline.digest import content_digest, shards_digest

TOTALS = {"anna": [30, 2], "bob": [5, 1], "jos\u00e9": [7, 3]}
REJECTS = ["4\tinvalid JSON: x\t{not\n", "9\tempty line\t\n"]


def test_the_order_of_users_does_not_matter() -> None:
    reordered = dict(reversed(list(TOTALS.items())))
    assert content_digest(reordered, REJECTS) == content_digest(TOTALS, REJECTS)
    assert len(content_digest(TOTALS, REJECTS)) == 64


def test_every_loaded_value_changes_it() -> None:
    base = content_digest(TOTALS, REJECTS)
    changed = [
        ({**TOTALS, "bob": [6, 1]}, REJECTS),  # a total
        ({**TOTALS, "bob": [5, 2]}, REJECTS),  # an event count
        ({**TOTALS, "carl": [1, 1]}, REJECTS),  # a user more
        ({k: v for k, v in TOTALS.items() if k != "bob"}, REJECTS),  # a user less
        (TOTALS, REJECTS[:1]),  # a rejected line less
        (TOTALS, ["5\tinvalid JSON: x\t{not\n", REJECTS[1]]),  # another line number
    ]
    digests = {content_digest(totals, rejects) for totals, rejects in changed}
    assert base not in digests and len(digests) == len(changed)


def test_a_sharded_batch_digest_depends_on_its_shards_in_order() -> None:
    a, b = content_digest(TOTALS, []), content_digest({"x": [1, 1]}, [])
    assert shards_digest([a, b]) == shards_digest([a, b])
    assert shards_digest([a, b]) != shards_digest([b, a]) != shards_digest([a])
