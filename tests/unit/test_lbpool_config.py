"""Pool parsing and validation, and label selectors."""

from __future__ import annotations

import pytest

from lbctl.allocators.labelselector import LabelRequirement, LabelSelector, SelectorOperator
from lbctl.allocators.lbpools import (
    Pool,
    PoolConfigError,
    PoolIssueKind,
    check_pools,
    parse_pools,
)

K = PoolIssueKind
IN, NOT_IN = SelectorOperator.IN, SelectorOperator.NOT_IN
EXISTS, MISSING = SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST


@pytest.mark.parametrize(
    ("addresses", "blocks"),
    [
        (("192.0.2.0/28",), [(4, 0xC0000200, 0xC000020F)]),
        (("192.0.2.5/28",), [(4, 0xC0000200, 0xC000020F)]),  # host bits masked, like Go
        (("192.0.2.10-192.0.2.20",), [(4, 0xC000020A, 0xC0000214)]),
        ((" 192.0.2.10 - 192.0.2.10 ",), [(4, 0xC000020A, 0xC000020A)]),
        (("2001:db8::/120",), [(6, 0x20010DB8 << 96, (0x20010DB8 << 96) + 255)]),
        (("2001:db8::1-2001:db8::2",), [(6, (0x20010DB8 << 96) + 1, (0x20010DB8 << 96) + 2)]),
        (
            ("192.0.2.7/32", "2001:db8::/128"),
            [(4, 0xC0000207, 0xC0000207), (6, 0x20010DB8 << 96, 0x20010DB8 << 96)],
        ),
    ],
)
def test_valid_addresses(addresses: tuple[str, ...], blocks: list[tuple[int, int, int]]) -> None:
    (parsed,) = parse_pools([Pool("p", addresses)])
    assert [(b.version, b.first, b.last) for b in parsed.blocks] == blocks


@pytest.mark.parametrize(
    ("address", "kind", "fragment"),
    [
        ("192.0.2.0/33", K.INVALID_ADDRESS, "invalid CIDR"),
        ("banana/24", K.INVALID_ADDRESS, "invalid CIDR"),
        ("192.0.2.1", K.INVALID_ADDRESS, "neither a CIDR nor a start-end range"),
        ("192.0.2.20-192.0.2.10", K.INVALID_RANGE, "starts after it ends"),
        ("192.0.2.1-2001:db8::1", K.MIXED_FAMILIES, "mixes IPv4 and IPv6"),
        ("192.0.2.1-", K.INVALID_ADDRESS, "invalid IP range"),
        ("192.0.2.1-192.0.2.300", K.INVALID_ADDRESS, "invalid IP range"),
    ],
)
def test_invalid_addresses(address: str, kind: PoolIssueKind, fragment: str) -> None:
    with pytest.raises(PoolConfigError) as err:
        parse_pools([Pool("p", (address,))])
    (issue,) = err.value.issues
    assert issue.kind == kind
    assert issue.pool == "p"
    assert fragment in str(err.value)
    assert repr(address) in issue.message


def test_overlap_between_pools_names_both_and_the_addresses() -> None:
    with pytest.raises(PoolConfigError) as err:
        parse_pools([Pool("a", ("192.0.2.0/28",)), Pool("b", ("192.0.2.8/29",))])
    (issue,) = err.value.issues
    assert issue.kind == K.OVERLAP
    assert {issue.pool, issue.other_pool} == {"a", "b"}
    assert "pools 'a' and 'b' overlap on 192.0.2.8-192.0.2.15" in issue.message
    assert "'192.0.2.0/28'" in issue.message
    assert "'192.0.2.8/29'" in issue.message


@pytest.mark.parametrize(
    ("first", "second", "span"),
    [
        ("192.0.2.0-192.0.2.10", "192.0.2.10-192.0.2.20", "192.0.2.10"),
        ("2001:db8::/120", "2001:db8::80-2001:db8::1:0", "2001:db8::80-2001:db8::ff"),
        ("192.0.2.0/24", "192.0.2.77/32", "192.0.2.77"),
    ],
)
def test_overlaps_are_found(first: str, second: str, span: str) -> None:
    _, issues = check_pools([Pool("a", (first,)), Pool("b", (second,))])
    assert [i.kind for i in issues] == [K.OVERLAP]
    assert f"on {span} " in issues[0].message


def test_overlap_within_one_pool_is_rejected() -> None:
    _, issues = check_pools([Pool("a", ("192.0.2.0/30", "192.0.2.3-192.0.2.4"))])
    assert [(i.kind, i.pool, i.other_pool) for i in issues] == [(K.OVERLAP, "a", "a")]
    assert "pool 'a' lists overlapping addresses on 192.0.2.3" in issues[0].message


def test_adjacent_and_cross_family_blocks_do_not_overlap() -> None:
    parsed = parse_pools(
        [
            Pool("a", ("192.0.2.0/31", "::ffff:0:0/127")),
            Pool("b", ("192.0.2.2-192.0.2.3", "2001:db8::/127")),
            Pool("c", ("0.0.0.0/31",)),
        ]
    )
    assert [p.name for p in parsed] == ["a", "b", "c"]


def test_every_problem_is_reported_at_once() -> None:
    bad_selector = LabelSelector(match_expressions=(LabelRequirement("env", IN),))
    _, issues = check_pools(
        [
            Pool("", ("192.0.2.0/30",)),
            Pool("dup", ("198.51.100.0/30",)),
            Pool("dup", ("198.51.100.4/30",)),
            Pool("empty", ()),
            Pool("bad", ("nope/1",), service_selectors=(bad_selector,)),
        ]
    )
    assert sorted(i.kind for i in issues) == sorted(
        [K.INVALID_NAME, K.DUPLICATE_NAME, K.NO_ADDRESSES, K.INVALID_ADDRESS, K.INVALID_SELECTOR]
    )


def test_capacity_excludes_buggy_addresses_only_when_avoided() -> None:
    plain, avoid = parse_pools(
        [
            Pool("plain", ("10.0.0.0/16",)),
            Pool(
                "avoid",
                ("10.1.0.0/16", "10.2.0.255-10.2.1.0", "2001:db8::/120"),
                avoid_buggy_ips=True,
            ),
        ]
    )
    assert plain.capacity(4) == 65536
    assert avoid.capacity(4) == 65536 - 512
    assert avoid.capacity(6) == 256


def test_pool_json_round_trip() -> None:
    pool = Pool(
        "p",
        ("192.0.2.0/30",),
        auto_assign=False,
        avoid_buggy_ips=True,
        priority=7,
        namespaces=("a", "b"),
        namespace_selectors=(LabelSelector({"env": "x"}),),
        service_selectors=(LabelSelector(match_expressions=(LabelRequirement("k", EXISTS),)),),
    )
    assert Pool.from_json(pool.to_json()) == pool


def test_pool_accepts_lists_and_keeps_tuples() -> None:
    pool = Pool("p", ["192.0.2.0/30"], namespaces=["ns"])  # type: ignore[arg-type]
    assert pool.addresses == ("192.0.2.0/30",)
    assert pool.namespaces == ("ns",)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (LabelSelector(), {}, True),
        (LabelSelector(), {"a": "1"}, True),
        (LabelSelector({"a": "1"}), {"a": "1", "b": "2"}, True),
        (LabelSelector({"a": "1"}), {"a": "2"}, False),
        (LabelSelector({"a": "1", "b": "2"}), {"a": "1"}, False),
        (
            LabelSelector(match_expressions=(LabelRequirement("a", IN, ("1", "2")),)),
            {"a": "2"},
            True,
        ),
        (LabelSelector(match_expressions=(LabelRequirement("a", IN, ("1",)),)), {}, False),
        (LabelSelector(match_expressions=(LabelRequirement("a", NOT_IN, ("1",)),)), {}, True),
        (
            LabelSelector(match_expressions=(LabelRequirement("a", NOT_IN, ("1",)),)),
            {"a": "1"},
            False,
        ),
        (LabelSelector(match_expressions=(LabelRequirement("a", EXISTS),)), {"a": ""}, True),
        (LabelSelector(match_expressions=(LabelRequirement("a", EXISTS),)), {"b": "1"}, False),
        (LabelSelector(match_expressions=(LabelRequirement("a", MISSING),)), {"b": "1"}, True),
        (LabelSelector(match_expressions=(LabelRequirement("a", MISSING),)), {"a": "1"}, False),
        (
            LabelSelector({"b": "2"}, (LabelRequirement("a", NOT_IN, ("x",)),)),
            {"a": "y", "b": "2"},
            True,
        ),
        (
            LabelSelector({"b": "2"}, (LabelRequirement("a", NOT_IN, ("x",)),)),
            {"a": "x", "b": "2"},
            False,
        ),
    ],
)
def test_label_selector(selector: LabelSelector, labels: dict[str, str], matches: bool) -> None:
    assert selector.matches(labels) is matches


@pytest.mark.parametrize(
    ("requirement", "problem"),
    [
        (LabelRequirement("a", IN), "needs at least one value"),
        (LabelRequirement("a", NOT_IN), "needs at least one value"),
        (LabelRequirement("a", EXISTS, ("x",)), "takes no values"),
        (LabelRequirement("a", MISSING, ("x",)), "takes no values"),
        (LabelRequirement("", EXISTS), "empty key"),
    ],
)
def test_label_selector_problems(requirement: LabelRequirement, problem: str) -> None:
    problems = LabelSelector(match_expressions=(requirement,)).problems()
    assert len(problems) == 1
    assert problem in problems[0]


def test_label_selector_json_round_trip() -> None:
    sel = LabelSelector({"a": "1"}, (LabelRequirement("b", IN, ("x", "y")),))
    assert LabelSelector.from_json(sel.to_json()) == sel
    with pytest.raises(ValueError, match="Near"):
        LabelSelector.from_json({"matchExpressions": [{"key": "b", "operator": "Near"}]})


def test_pool_allows() -> None:
    pool = Pool(
        "p",
        ("192.0.2.0/30",),
        namespaces=("prod",),
        namespace_selectors=(LabelSelector({"env": "prod"}),),
        service_selectors=(LabelSelector({"tier": "edge"}), LabelSelector({"tier": "api"})),
    )
    edge = {"tier": "edge"}
    assert pool.allows(namespace="prod", namespace_labels={}, service_labels=edge)
    assert pool.allows(namespace="other", namespace_labels={"env": "prod"}, service_labels=edge)
    assert pool.allows(namespace="prod", namespace_labels={}, service_labels={"tier": "api"})
    assert not pool.allows(namespace="other", namespace_labels={}, service_labels=edge)
    assert not pool.allows(namespace="prod", namespace_labels={}, service_labels={})
    assert pool.has_service_allocation
    assert not Pool("q", ("192.0.2.0/30",)).has_service_allocation
