"""Label and field selectors against kube-apiserver's parsing, matching and messages.

Expected texts come from ``apimachinery/pkg/labels/selector.go`` and
``apimachinery/pkg/fields/selector.go`` (kube-apiserver 1.34): the API server
answers a bad selector with 400 BadRequest and exactly these messages.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbctl.apimachinery.resources import default_registry
from lbctl.apimachinery.selectors import (
    FieldErrorStyle,
    FieldRequirement,
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    escape_field_value,
    field_value,
    parse_field_selector,
    parse_label_selector,
)

REG = default_registry()
SERVICE_FIELDS = REG.get("", "v1", "services").field_selectors  # type: ignore[union-attr]
NODE_FIELDS = REG.get("", "v1", "nodes").field_selectors  # type: ignore[union-attr]
EVENT_FIELDS = REG.get("", "v1", "events").field_selectors  # type: ignore[union-attr]
CONFIGMAP_FIELDS = REG.get("", "v1", "configmaps").field_selectors  # type: ignore[union-attr]

QNAME = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with"
    " an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for"
    " validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or"
    " 'my_value',  or '12345', regex used for validation is"
    " '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
OPS = "in, notin, =, ==, !=, gt, lt"
NOT_INT = "for 'Gt', 'Lt' operators, the value must be an integer"
TOO_LONG = "must be no more than 63 characters"
REQ = "unable to parse requirement: "


def obj(labels: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x"}
    if labels is not None:
        meta["labels"] = labels
    return {"metadata": meta, **fields}


# -- label selectors: parsing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("", ""),
        ("   ", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("a in (c, b)", "a in (b,c)"),
        ("a notin (c,b,c)", "a notin (b,c)"),
        ("a", "a"),
        ("!a", "!a"),
        ("  x =  y ,\tz\n", "x=y,z"),
        ("z,a=b", "a=b,z"),  # sorted by key
        ("a in ()", "a in ()"),
        ("a in (x,,y)", "a in (,x,y)"),
        ("a in (,x)", "a in (,x)"),
        ("a in (x,)", "a in (,x)"),
        ("a=", "a="),
        ("a=,b", "a=,b"),
        ("a in (in,notin)", "a in (in,notin)"),  # keywords are values where values stand
        ("in=notin", "in=notin"),
        ("a>5", "a>5"),
        ("a<03", "a<03"),
        ("example.com/app=web", "example.com/app=web"),
        ("a=b,a!=c", "a=b,a!=c"),
    ],
)
def test_label_selector_renders_like_upstream(text: str, rendered: str) -> None:
    assert str(parse_label_selector(text)) == rendered


@pytest.mark.parametrize(
    ("text", "requirements"),
    [
        ("a in (c,b)", [Requirement("a", Operator.IN, ("b", "c"))]),
        ("a notin ()", [Requirement("a", Operator.NOT_IN, ("",))]),
        (
            "b==x,a!=y",
            [
                Requirement("a", Operator.NOT_EQUALS, ("y",)),
                Requirement("b", Operator.DOUBLE_EQUALS, ("x",)),
            ],
        ),
        ("!a,b", [Requirement("a", Operator.DOES_NOT_EXIST), Requirement("b", Operator.EXISTS)]),
        ("a>7", [Requirement("a", Operator.GREATER_THAN, ("7",))]),
    ],
)
def test_label_requirements(text: str, requirements: list[Requirement]) -> None:
    sel = parse_label_selector(text)
    assert list(sel) == requirements
    assert not sel.empty


def test_empty_label_selector() -> None:
    assert parse_label_selector("").empty
    assert parse_label_selector(" \t ").empty
    assert not parse_label_selector("a").empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", f"{REQ}found 'b', expected: {OPS}"),
        ("a ! b", f"{REQ}found '!', expected: {OPS}"),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b,,c", "found ',', expected: identifier after ','"),
        ("a=b!=c", "found '!=', expected: ',' or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("!", f"{REQ}found '', expected: identifier"),
        ("!!a", f"{REQ}found '!', expected: identifier"),
        ("a in b", f"{REQ}found 'b' expected: '('"),
        ("a in", f"{REQ}found '' expected: '('"),
        ("a in (b", f"{REQ}found '', expected: ',' or ')'"),
        ("a in (b c)", f"{REQ}found 'c', expected: ',' or ')'"),
        ("a in (=)", f"{REQ}found '=', expected: ',', ')' or identifier"),
        ("a in (b,=)", f"{REQ}found '=', expected: ',', or identifier"),
        ("a in (b,", f"{REQ}found '', expected: ',', or identifier"),
        ("a=(b)", f"{REQ}found '(', expected: identifier"),
        ("a==!", f"{REQ}found '!', expected: identifier"),
        ("-a=b", f'{REQ}<nil>: Invalid value: "-a": name part {QNAME}'),
        (
            "a/b/c",
            f'{REQ}<nil>: Invalid value: "a/b/c": a qualified name {QNAME}'
            " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        ("/a", f'{REQ}<nil>: Invalid value: "/a": prefix part must be non-empty'),
        ("a/", f'{REQ}<nil>: Invalid value: "a/": name part must be non-empty; name part {QNAME}'),
        (
            "x" * 64,
            f'{REQ}<nil>: Invalid value: "{"x" * 64}": name part {TOO_LONG}',
        ),
        ("a=b$", f'{REQ}values[0][a]: Invalid value: "b$": {LABEL_VALUE}'),
        ("a in (ok,-bad)", f'{REQ}values[0][a]: Invalid value: "-bad": {LABEL_VALUE}'),
        (
            "a=" + "v" * 64,
            f'{REQ}values[0][a]: Invalid value: "{"v" * 64}": {TOO_LONG}',
        ),
        (
            "a>x",
            f'{REQ}values[0]: Invalid value: "x": {NOT_INT}',
        ),
        (
            "a<9223372036854775808",
            f'{REQ}values[0]: Invalid value: "9223372036854775808": {NOT_INT}',
        ),
        (
            "a<-3",
            f'{REQ}values[0][a]: Invalid value: "-3": {LABEL_VALUE}',
        ),  # signs are not label chars
        (
            "a>-x",
            f'{REQ}[values[0]: Invalid value: "-x": {NOT_INT},'
            f' values[0][a]: Invalid value: "-x": {LABEL_VALUE}]',
        ),
    ],
)
def test_label_selector_errors_are_upstreams(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value) == message


# -- label selectors: matching ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a==b", {"a": "b"}, True),
        ("a!=b", {}, True),  # != matches objects lacking the key
        ("a!=b", {"a": "b"}, False),
        ("a!=b", {"a": "c"}, True),
        ("a in (b,c)", {"a": "c"}, True),
        ("a in (b,c)", {"a": "d"}, False),
        ("a in (b,c)", {}, False),
        ("a notin (b)", {}, True),  # notin too
        ("a notin (b)", {"a": "b"}, False),
        ("a notin (b)", {"a": "x"}, True),
        ("a in ()", {"a": ""}, True),
        ("a=", {"a": ""}, True),
        ("a", {"a": ""}, True),
        ("a", {}, False),
        ("!a", {}, True),
        ("!a", {"a": "x"}, False),
        ("a>5", {"a": "6"}, True),
        ("a>5", {"a": "5"}, False),
        ("a>5", {"a": "x"}, False),
        ("a>5", {}, False),
        ("a<5", {"a": "-1"}, True),
        ("a<5", {"a": "+4"}, True),
        ("a<5", {"a": "07"}, False),
        ("a=b,c", {"a": "b"}, False),
        ("a=b,c", {"a": "b", "c": ""}, True),
        ("", {}, True),
        ("", {"a": "b"}, True),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    sel = parse_label_selector(text)
    assert sel.matches(obj(labels)) is expected
    assert sel.matches_labels(labels) is expected


def test_label_selector_reads_metadata_labels_of_the_object() -> None:
    sel = parse_label_selector("app!=db")
    assert sel.matches({}) is True
    assert sel.matches({"metadata": {"labels": None}}) is True
    assert sel.matches({"metadata": {"labels": {"app": "db"}}}) is False
    # labels elsewhere in the object do not count
    assert parse_label_selector("app=db").matches({"spec": {"labels": {"app": "db"}}}) is False


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("a=b", "a", "b"),
        ("a==b", "a", "b"),
        ("a in (b)", "a", "b"),
        ("a in (b,c)", "a", None),
        ("a!=b", "a", None),
        ("a=b", "c", None),
    ],
)
def test_label_requires_exact_match(text: str, key: str, value: str | None) -> None:
    assert parse_label_selector(text).requires_exact_match(key) == value


def test_label_selector_value_object() -> None:
    sel = LabelSelector((Requirement("a", Operator.EXISTS),))
    assert sel == parse_label_selector("a")
    assert str(Requirement("k", Operator.LESS_THAN, ("3",))) == "k<3"


_keys = st.from_regex(r"[a-z]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True)
_values = st.from_regex(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?)?", fullmatch=True)


@st.composite
def _requirements(draw: st.DrawFn) -> str:
    key = draw(_keys)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!"]))
    if op == "exists":
        return key
    if op == "!":
        return "!" + key
    if op in ("in", "notin"):
        values = draw(st.lists(_values, min_size=1, max_size=3))
        return f"{key} {op} ({','.join(values)})"
    return f"{key}{op}{draw(_values)}"


@given(st.lists(_requirements(), max_size=4))
def test_rendered_label_selector_parses_back_to_itself(parts: list[str]) -> None:
    sel = parse_label_selector(",".join(parts))
    assert parse_label_selector(str(sel)) == sel


# -- field selectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rendered", "terms"),
    [
        ("", "", []),
        (",", "", []),
        ("metadata.name=web", "metadata.name=web", [FieldRequirement("metadata.name", "web")]),
        ("metadata.name==web", "metadata.name=web", [FieldRequirement("metadata.name", "web")]),
        (
            "metadata.name!=web",
            "metadata.name!=web",
            [FieldRequirement("metadata.name", "web", negated=True)],
        ),
        ("metadata.name=", "metadata.name=", [FieldRequirement("metadata.name", "")]),
        (
            "spec.type!=ClusterIP,metadata.name=x",  # terms are sorted
            "metadata.name=x,spec.type!=ClusterIP",
            [
                FieldRequirement("metadata.name", "x"),
                FieldRequirement("spec.type", "ClusterIP", negated=True),
            ],
        ),
        ("metadata.name=a\\,b", "metadata.name=a\\,b", [FieldRequirement("metadata.name", "a,b")]),
        (
            "metadata.name=a\\=b\\\\c",
            "metadata.name=a\\=b\\\\c",
            [FieldRequirement("metadata.name", "a=b\\c")],
        ),
    ],
)
def test_field_selector_parses_like_upstream(
    text: str, rendered: str, terms: list[FieldRequirement]
) -> None:
    sel = parse_field_selector(text, supported=SERVICE_FIELDS)
    assert list(sel) == terms
    assert str(sel) == rendered
    assert sel.empty is (not terms)


@pytest.mark.parametrize(
    ("text", "term"),
    [
        # At each position "!=" is tried, then "==", then "=": the first hit splits.
        ("metadata.name==a", FieldRequirement("metadata.name", "a")),
        ("metadata.name!=a", FieldRequirement("metadata.name", "a", negated=True)),
        ("metadata.name=!a", FieldRequirement("metadata.name", "!a")),
    ],
)
def test_field_selector_splits_at_the_first_operator(text: str, term: FieldRequirement) -> None:
    assert list(parse_field_selector(text, supported=SERVICE_FIELDS)) == [term]


NOT_KNOWN = '"{}" is not a known field selector: only "metadata.name", "metadata.namespace"'


@pytest.mark.parametrize(
    ("text", "supported", "style", "message"),
    [
        ("spec.foo=x", SERVICE_FIELDS, None, "field label not supported: spec.foo"),
        (
            "spec.clusterIP=x,status.phase=y",
            SERVICE_FIELDS,
            None,
            "field label not supported: status.phase",
        ),
        ("z.field=1,metadata.name=web", SERVICE_FIELDS, None, "field label not supported: z.field"),
        (
            "metadata.namespace=x",
            NODE_FIELDS,
            None,
            "field label not supported: metadata.namespace",
        ),
        (
            "reportingController=x",
            EVENT_FIELDS,
            None,
            "field label not supported: reportingController",
        ),
        (" metadata.name=x", SERVICE_FIELDS, None, "field label not supported:  metadata.name"),
        ("spec.foo=x", CONFIGMAP_FIELDS, None, NOT_KNOWN.format("spec.foo")),
        (
            "data.x=1",
            CONFIGMAP_FIELDS,
            FieldErrorStyle.NOT_SUPPORTED,
            "field label not supported: data.x",
        ),
        (
            "spec.size=1",
            ("metadata.name",),
            FieldErrorStyle.NOT_KNOWN,
            NOT_KNOWN.format("spec.size"),
        ),
        (
            "metadata.name",
            SERVICE_FIELDS,
            None,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
        ),
        (
            "metadata.name=a,b",
            SERVICE_FIELDS,
            None,
            "invalid selector: 'metadata.name=a,b'; can't understand 'b'",
        ),
        (
            "metadata.name=a=b",
            SERVICE_FIELDS,
            None,
            "invalid field selector: unescaped character in value: 61",
        ),
        ("metadata.name=a\\\\,b=c", SERVICE_FIELDS, None, "field label not supported: b"),
        (
            "metadata.name=a\\x",
            SERVICE_FIELDS,
            None,
            "invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "metadata.name=a\\",
            SERVICE_FIELDS,
            None,
            "invalid field selector: invalid escape sequence: \\",
        ),
    ],
)
def test_field_selector_errors_are_upstreams(
    text: str, supported: tuple[str, ...], style: FieldErrorStyle | None, message: str
) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text, supported=supported, style=style)
    assert str(info.value) == message


SERVICE = {
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"type": "NodePort", "clusterIP": "10.96.0.10"},
}
NODE = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
CORDONED = {"kind": "Node", "metadata": {"name": "n2"}, "spec": {"unschedulable": True}}
EVENT = {
    "kind": "Event",
    "apiVersion": "v1",
    "metadata": {"name": "e", "namespace": "default"},
    "involvedObject": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u1"},
    "reason": "Synced",
    "type": "Normal",
    "source": {"component": "lbctl"},
    "reportingComponent": "lbctl-controller",
}
NEW_EVENT = {
    "kind": "Event",
    "apiVersion": "events.k8s.io/v1",
    "metadata": {"name": "e2", "namespace": "default"},
    "regarding": {"kind": "Node", "name": "n1"},
    "reportingController": "lbctl.io/speaker",
    "reason": "Announced",
}


@pytest.mark.parametrize(
    ("text", "supported", "target", "expected"),
    [
        ("metadata.name=web", SERVICE_FIELDS, SERVICE, True),
        ("metadata.name==web,metadata.namespace=default", SERVICE_FIELDS, SERVICE, True),
        ("metadata.name=db", SERVICE_FIELDS, SERVICE, False),
        ("metadata.name!=db", SERVICE_FIELDS, SERVICE, True),
        ("spec.type=NodePort,spec.clusterIP=10.96.0.10", SERVICE_FIELDS, SERVICE, True),
        ("spec.type!=NodePort", SERVICE_FIELDS, SERVICE, False),
        ("spec.unschedulable=false", NODE_FIELDS, NODE, True),  # missing bool is "false"
        ("spec.unschedulable=true", NODE_FIELDS, NODE, False),
        ("spec.unschedulable=true", NODE_FIELDS, CORDONED, True),
        ("spec.unschedulable=True", NODE_FIELDS, CORDONED, False),  # Go prints "true"
        ("metadata.namespace=", ("metadata.name", "metadata.namespace"), NODE, True),
        ("involvedObject.kind=Service,involvedObject.uid=u1", EVENT_FIELDS, EVENT, True),
        ("involvedObject.fieldPath=", EVENT_FIELDS, EVENT, True),
        ("source=lbctl", EVENT_FIELDS, EVENT, True),
        ("reportingComponent=lbctl-controller", EVENT_FIELDS, EVENT, True),
        ("type=Warning", EVENT_FIELDS, EVENT, False),
        ("regarding.kind=Node,reason=Announced", ("regarding.kind", "reason"), NEW_EVENT, True),
        ("source=lbctl.io/speaker", ("source",), NEW_EVENT, True),
        ("", SERVICE_FIELDS, SERVICE, True),
    ],
)
def test_field_selector_matches_objects(
    text: str, supported: tuple[str, ...], target: dict[str, Any], expected: bool
) -> None:
    assert parse_field_selector(text, supported=supported).matches(target) is expected


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        ({"a": {"b": 5}}, "a.b", "5"),
        ({"a": {"b": False}}, "a.b", "false"),
        ({"a": {"b": None}}, "a.b", ""),
        ({"a": "flat"}, "a.b", ""),
        ({}, "spec.unschedulable", "false"),
        ({"source": {"component": ""}, "reportingComponent": "rc"}, "source", "rc"),
        ({"deprecatedSource": {"component": "old"}, "reportingController": "rc"}, "source", "old"),
        ({}, "source", ""),
        ({"reportingController": "rc"}, "reportingComponent", "rc"),
    ],
)
def test_field_values_convert_like_to_selectable_fields(
    target: dict[str, Any], field: str, value: str
) -> None:
    assert field_value(target, field) == value


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("metadata.name=web,spec.type=LoadBalancer", "metadata.name", "web"),
        ("metadata.name!=web", "metadata.name", None),
        ("spec.type=LoadBalancer", "metadata.name", None),
    ],
)
def test_field_requires_exact_match(text: str, field: str, value: str | None) -> None:
    assert parse_field_selector(text, supported=SERVICE_FIELDS).requires_exact_match(field) == value


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("plain", "plain"), ("a,b", "a\\,b"), ("a=b", "a\\=b"), ("a\\b", "a\\\\b"), ("", "")],
)
def test_escape_field_value(raw: str, escaped: str) -> None:
    assert escape_field_value(raw) == escaped


@given(st.text(max_size=20))
def test_escaped_field_values_round_trip(value: str) -> None:
    sel = parse_field_selector(
        f"metadata.name={escape_field_value(value)}", supported=SERVICE_FIELDS
    )
    assert list(sel) == [FieldRequirement("metadata.name", value)]
    assert sel.matches({"metadata": {"name": value}})
