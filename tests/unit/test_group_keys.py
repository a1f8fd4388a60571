"""Group keys (``domain.groups``): the text one group of a grouped meter is stored and billed under. It
reads back as the very values it was made of, whatever they hold, and values without ``|`` keep the key
earlier versions wrote (stored cells, levels and contributions keep theirs)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from neruba.domain.groups import join_group, parse_group
from neruba.domain.ingest import earlier_group_key, group_key

NAMES = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)  # a meter's group_by names
SPECIAL = st.sampled_from(["|", "=", "\\", "%", "||", "|=", "=|", "é", "\u2028", "\U0001f600", ""])
VALUES = st.lists(st.one_of(st.text(), SPECIAL), max_size=6).map("".join)
GROUPS = st.dictionaries(NAMES, VALUES, max_size=4)


def _old_key(group: dict[str, str]) -> str:
    """How earlier versions joined a group (a fixed reference, for the values they read right)."""
    return "|".join(f"{k}={v}" for k, v in group.items())


@given(GROUPS)
def test_a_key_reads_back_as_its_values(group: dict[str, str]) -> None:
    key = group_key(list(group), group)
    assert key == join_group(group.items())
    assert parse_group(key) == group


@given(GROUPS, GROUPS)
def test_distinct_groups_have_distinct_keys(one: dict[str, str], other: dict[str, str]) -> None:
    if one != other:
        assert group_key(list(one), one) != group_key(list(other), other)


@given(st.dictionaries(NAMES, VALUES.filter(lambda v: "|" not in v), max_size=4))
def test_values_without_a_bar_keep_the_earlier_key(group: dict[str, str]) -> None:
    assert group_key(list(group), group) == _old_key(group)


def test_the_values_that_used_to_collide() -> None:
    # g = "a|h=b", h = "c" and g = "a", h = "b|h=c" were one key; "y|g=z" read as g = z
    one, other = {"g": "a|h=b", "h": "c"}, {"g": "a", "h": "b|h=c"}
    assert _old_key(one) == _old_key(other)
    assert group_key(["g", "h"], one) == "g=a||h=b|h=c"
    assert group_key(["g", "h"], other) == "g=a|h=b||h=c"
    assert parse_group(group_key(["g", "h"], {"g": "b", "h": "y|g=z"})) == {"g": "b", "h": "y|g=z"}
    assert parse_group(group_key(["h"], {"h": "|"})) == {"h": "|"}
    assert parse_group(group_key(["g", "h"], {"g": "|", "h": ""})) == {"g": "|", "h": ""}


def test_keys_stored_before_read_as_they_always_did() -> None:
    # a key without a doubled bar is split at each bar, as before: ordinary keys and the empty key
    assert parse_group("") == {}
    assert parse_group("model=gpt|region=eu") == {"model": "gpt", "region": "eu"}
    assert parse_group("region=eu|missing=") == {"region": "eu", "missing": ""}
    assert parse_group("expr=a=b") == {"expr": "a=b"}
    # an old key whose value held one bar reads as it did then (it cannot be told from another's)
    assert parse_group("g=b|h=y|g=z") == {"g": "z", "h": "y"}


@given(GROUPS)
def test_the_earlier_key_is_named_only_when_it_differs(group: dict[str, str]) -> None:
    earlier = earlier_group_key(list(group), group)
    if any("|" in value for value in group.values()):
        assert earlier == _old_key(group) != group_key(list(group), group)
    else:
        assert earlier is None
