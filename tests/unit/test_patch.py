"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and ``apply_patch`` as the API server
uses them: content types, body decoding, kube-apiserver's error texts and codes, and
properties (an empty patch changes nothing, inputs are never modified, ``test`` of the
current value passes, SMP without merge lists is a merge patch)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.apimachinery.patch import (
    INVALID_MERGE_PATCH,
    MAX_JSON_PATCH_OPERATIONS,
    REJECTED,
    BadPatch,
    PatchError,
    PatchTooLarge,
    PatchType,
    SmpSchema,
    UnprocessablePatch,
    UnsupportedPatch,
    apply_patch,
    decode_json,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

# -- RFC 7386, appendix A ------------------------------------------------------------------
RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("doc", "patch", "want"), RFC7386)
def test_rfc7386_appendix(doc: Any, patch: Any, want: Any) -> None:
    assert merge_patch(doc, patch) == want


def test_merge_patch_does_not_alias_the_patch() -> None:
    patch = {"spec": {"ports": [{"port": 80}]}}
    out = merge_patch({}, patch)
    out["spec"]["ports"][0]["port"] = 81
    assert patch == {"spec": {"ports": [{"port": 80}]}}


# -- RFC 6902, appendix A ------------------------------------------------------------------
RFC6902_OK = [
    ("A.1", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10", {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ("A.14", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
     {"/": 9, "~1": 10}),
    ("A.16", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ("copy", {"a": {"b": [1]}}, [{"op": "copy", "from": "/a/b", "path": "/c"}],
     {"a": {"b": [1]}, "c": [1]}),
    ("escapes", {}, [{"op": "add", "path": "/a~1b~0c", "value": 1}], {"a/b~c": 1}),
    ("add at end", {"l": [1]}, [{"op": "add", "path": "/l/1", "value": 2}], {"l": [1, 2]}),
    ("add replaces root", {"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}),
    ("test root", {"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}], {"a": 1}),
    ("numbers by value", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    # json-patch v4 (kube-apiserver's) beyond RFC 6902:
    ("v4: replace adds a missing member", {}, [{"op": "replace", "path": "/a", "value": 1}],
     {"a": 1}),
    ("v4: negative index", {"l": [1, 2, 3]}, [{"op": "remove", "path": "/l/-1"}], {"l": [1, 2]}),
    ("v4: test null on missing", {}, [{"op": "test", "path": "/a", "value": None}], {}),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "ops", "want"), [c[1:] for c in RFC6902_OK],
                         ids=[c[0] for c in RFC6902_OK])  # fmt: skip
def test_rfc6902_appendix(doc: Any, ops: list[dict[str, Any]], want: Any) -> None:
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == want
    assert doc == before


RFC6902_FAIL = [
    ("A.9", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}],
     "testing value /baz failed: test failed"),
    ("A.12", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}],
     'add operation does not apply: doc is missing path: "/baz/bat": missing value'),
    ("A.13", {"foo": "bar"}, json.loads('[{"op": "add", "path": "/baz", "value": "qux", '
                                        '"op": "remove"}]'),
     "error in remove for path: '/baz': Unable to remove nonexistent key: baz: missing value"),
    ("A.15", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
     "testing value /~01 failed: test failed"),
    ("remove index out of range", {"l": [1]}, [{"op": "remove", "path": "/l/5"}],
     "error in remove for path: '/l/5': Unable to access invalid index: 5: invalid index "
     "referenced"),
    ("add index out of range", {"l": [1]}, [{"op": "add", "path": "/l/3", "value": 0}],
     "error in add for path: '/l/3': Unable to access invalid index: 3: invalid index "
     "referenced"),
    ("add non-numeric index", {"l": []}, [{"op": "add", "path": "/l/x", "value": 0}],
     "error in add for path: '/l/x': value was not a proper array index: 'x': strconv.Atoi: "
     'parsing "x": invalid syntax'),
    ("replace index out of range", {"l": [1]}, [{"op": "replace", "path": "/l/1", "value": 0}],
     "replace operation does not apply: doc is missing key: /l/1: missing value"),
    ("replace missing parent", {}, [{"op": "replace", "path": "/a/b", "value": 0}],
     "replace operation does not apply: doc is missing path: /a/b: missing value"),
    ("move missing from", {}, [{"op": "move", "from": "/a/b", "path": "/c"}],
     "move operation does not apply: doc is missing from path: /a/b: missing value"),
    ("move missing destination", {"a": 1}, [{"op": "move", "from": "/a", "path": "/x/y"}],
     "move operation does not apply: doc is missing destination path: /x/y: missing value"),
    ("copy missing member", {"a": {}}, [{"op": "copy", "from": "/a/b", "path": "/c"}],
     "copy operation does not apply: doc is missing from path: /a/b: missing value"),
    ("test missing path", {}, [{"op": "test", "path": "/a/b", "value": 1}],
     "test operation does not apply: is missing path: /a/b: missing value"),
    ("test type", {"a": True}, [{"op": "test", "path": "/a", "value": 1}],
     "testing value /a failed: test failed"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "ops", "detail"), [c[1:] for c in RFC6902_FAIL],
                         ids=[c[0] for c in RFC6902_FAIL])  # fmt: skip
def test_rfc6902_errors_are_unprocessable(doc: Any, ops: list[Any], detail: str) -> None:
    with pytest.raises(UnprocessablePatch) as info:
        json_patch(doc, ops)
    assert (info.value.code, info.value.message, info.value.detail) == (422, REJECTED, detail)


def test_a_failing_op_leaves_the_document_untouched() -> None:
    doc = {"a": 1}
    with pytest.raises(UnprocessablePatch):
        json_patch(doc, [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/c"}])
    assert doc == {"a": 1}


MALFORMED = [
    ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    ("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
    ([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    ([None], "Unexpected kind: unknown"),
    ([{"path": "/a"}], "Unexpected kind: unknown"),
    ([{"op": "frob", "path": "/a"}], "Unexpected kind: frob"),
    ([{"op": "remove"}], "remove operation failed to decode path: operation missing path "
                         "field: missing value"),
    ([{"op": "remove", "path": 1}], "remove operation failed to decode path: json: cannot "
                                    "unmarshal number into Go value of type string"),
    ([{"op": "remove", "path": "a"}], 'remove operation failed to decode path: invalid JSON '
                                      'pointer: "a"'),
    ([{"op": "move", "path": "/a"}], "move operation failed to decode from: operation, missing "
                                     "from field: missing value"),
    ([{"op": "add", "path": "/a"}], "add operation failed: operation, missing value field: "
                                    "missing value"),
]  # fmt: skip


@pytest.mark.parametrize(("ops", "message"), MALFORMED)
def test_malformed_json_patch_is_a_bad_request(ops: Any, message: str) -> None:
    with pytest.raises(BadPatch) as info:
        json_patch({"a": 1}, ops)
    assert (info.value.code, info.value.message) == (400, message)


def test_malformed_op_is_refused_before_anything_applies() -> None:
    ops = [{"op": "remove", "path": "/missing"}, {"op": "nope"}]
    with pytest.raises(BadPatch, match="Unexpected kind: nope"):
        json_patch({}, ops)


# -- apply_patch: bodies, content types, codes ---------------------------------------------
CM: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "c", "namespace": "default", "labels": {"app": "web", "tier": "x"}},
      "data": {"a": "1"}}  # fmt: skip


def patched(body: bytes | str, ptype: PatchType, **kw: Any) -> dict[str, Any]:
    return apply_patch(CM, body, ptype, api_version="v1", kind="ConfigMap", **kw)


def test_kubectl_label_and_annotate_merge_patches() -> None:
    # kubectl label cm c env=prod tier-   /   kubectl annotate cm c note=hi
    got = patched(b'{"metadata":{"labels":{"env":"prod","tier":null}}}', PatchType.MERGE)
    assert got["metadata"]["labels"] == {"app": "web", "env": "prod"}
    got = patched(b'{"metadata":{"annotations":{"note":"hi"}}}', PatchType.MERGE)
    assert got["metadata"]["annotations"] == {"note": "hi"}
    assert got["data"] == {"a": "1"}
    assert CM["metadata"]["labels"] == {"app": "web", "tier": "x"}


def test_apply_patch_json_patch_and_strategic() -> None:
    got = patched('[{"op":"replace","path":"/data/a","value":"2"}]', PatchType.JSON)
    assert got["data"] == {"a": "2"}
    got = patched('{"data":{"a":null,"b":"3"}}', PatchType.STRATEGIC)
    assert got["data"] == {"b": "3"}


def test_null_bodies() -> None:
    assert patched(b"null", PatchType.JSON) == CM  # Go decodes null as no operations
    assert patched(b"null", PatchType.STRATEGIC) == CM  # ... and as an empty map
    with pytest.raises(BadPatch, match=INVALID_MERGE_PATCH):
        patched(b"null", PatchType.MERGE)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Invalid JSON Patch"),
        # As kube-apiserver 1.34 answers (seen in the differential suite).
        (
            b"[]",
            "error decoding patch: json: cannot unmarshal array into Go value of type "
            "map[string]interface {}",
        ),
        (
            b'"x"',
            "error decoding patch: json: cannot unmarshal string into Go value of type "
            "map[string]interface {}",
        ),
        (
            b"1",
            "error decoding patch: json: cannot unmarshal number into Go value of type "
            "map[string]interface {}",
        ),
    ],
)
def test_merge_patch_that_is_not_an_object(body: bytes, message: str) -> None:
    with pytest.raises(BadPatch) as info:
        patched(body, PatchType.MERGE)
    assert (info.value.code, info.value.message) == (400, message)


DECODE = [
    (b"", "unexpected end of JSON input"),
    (b'{"a":', "unexpected end of JSON input"),
    (b'{"a":"x', "unexpected end of JSON input"),
    (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"{} x", "invalid character 'x' after top-level value"),
    (b"[NaN]", "invalid character 'N' looking for beginning of value"),
    (b'"a\\qb"', "invalid character 'q' in string escape code"),
    (b'"a\nb"', "invalid character '\\n' in string literal"),
    (b"1e999", "json: cannot unmarshal number 1e999 into Go value of type float64"),
]


@pytest.mark.parametrize(("body", "message"), DECODE)
def test_decode_errors_carry_go_messages(body: bytes, message: str) -> None:
    with pytest.raises(BadPatch) as info:
        decode_json(body)
    assert info.value.message == message


def test_strategic_body_must_be_an_object() -> None:
    with pytest.raises(BadPatch) as info:
        patched(b"[]", PatchType.STRATEGIC)
    assert info.value.message == (
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    )


def test_custom_kinds_refuse_strategic_merge_with_415() -> None:
    with pytest.raises(UnsupportedPatch) as info:
        apply_patch({}, b"{}", PatchType.STRATEGIC, api_version="lbctl.io/v1", kind="Pool",
                    custom=True)  # fmt: skip
    assert info.value.code == 415
    assert str(info.value) == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json"
    )
    assert apply_patch({"a": 1}, b'{"b":2}', PatchType.MERGE, api_version="lbctl.io/v1",
                       kind="Pool", custom=True) == {"a": 1, "b": 2}  # fmt: skip


def test_apply_is_not_implemented() -> None:
    with pytest.raises(UnsupportedPatch, match="strategic-merge-patch"):
        patched(b"{}", PatchType.APPLY)


def test_too_many_json_patch_operations() -> None:
    ops = [{"op": "test", "path": "", "value": CM}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(PatchTooLarge) as info:
        patched(json.dumps(ops), PatchType.JSON)
    assert info.value.code == 413
    assert str(info.value).endswith("maximum operations in a JSON patch is 10000, got 10001")
    assert patched(json.dumps(ops[:-1]), PatchType.JSON) == CM


def test_json_patch_must_leave_an_object() -> None:
    with pytest.raises(UnprocessablePatch, match=REJECTED):
        patched(b'[{"op":"replace","path":"","value":[1]}]', PatchType.JSON)


def test_error_classes_map_to_http() -> None:
    assert [(c.code, c.reason) for c in (BadPatch, PatchTooLarge, UnprocessablePatch,
                                          UnsupportedPatch)] == [
        (400, "BadRequest"), (413, "RequestEntityTooLarge"), (422, "Invalid"),
        (415, "UnsupportedMediaType"),
    ]  # fmt: skip
    assert all(issubclass(c, PatchError) for c in (BadPatch, UnprocessablePatch, UnsupportedPatch))


# -- properties ----------------------------------------------------------------------------
SCALARS = (st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=4)
           | st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip
KEYS = st.text(alphabet="ab/~$", max_size=3)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=4)


def pointers(value: Any, prefix: str = "") -> list[str]:
    """Every JSON pointer into ``value``, the root ("") included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += pointers(v, f"{prefix}/{k.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += pointers(v, f"{prefix}/{i}")
    return out


def at(value: Any, pointer: str) -> Any:
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        value = value[int(token)] if isinstance(value, list) else value[token]
    return value


@given(OBJECTS)
def test_empty_merge_patch_is_identity(doc: dict[str, Any]) -> None:
    assert merge_patch(doc, {}) == doc


@given(OBJECTS, OBJECTS)
def test_merge_patch_is_idempotent_and_pure(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    before = copy.deepcopy((doc, patch))
    once = merge_patch(doc, patch)
    assert merge_patch(once, patch) == once
    assert (doc, patch) == before


@given(OBJECTS, st.data())
def test_json_patch_test_of_the_current_value_passes(doc: dict[str, Any], data: Any) -> None:
    pointer = data.draw(st.sampled_from(pointers(doc)))
    ops = [{"op": "test", "path": pointer, "value": copy.deepcopy(at(doc, pointer))}]
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == doc
    assert doc == before


@given(OBJECTS, st.data())
def test_json_patch_remove_then_add_restores(doc: dict[str, Any], data: Any) -> None:
    inner = [p for p in pointers(doc) if p]
    if not inner:
        return
    pointer = data.draw(st.sampled_from(inner))
    value = at(doc, pointer)
    before = copy.deepcopy(doc)
    ops = [{"op": "remove", "path": pointer}, {"op": "add", "path": pointer, "value": value}]
    assert json_patch(doc, ops) == doc
    assert doc == before


MERGE_KEYS = st.text(alphabet="abc", max_size=2)
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(MERGE_KEYS, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200)
@given(
    st.dictionaries(MERGE_KEYS, PLAIN, max_size=4), st.dictionaries(MERGE_KEYS, PLAIN, max_size=4)
)
def test_smp_without_merge_lists_or_directives_is_a_merge_patch(
    doc: dict[str, Any], patch: dict[str, Any]
) -> None:
    before = copy.deepcopy((doc, patch))
    assert strategic_merge_patch(doc, patch, SmpSchema()) == merge_patch(doc, patch)
    assert strategic_merge_patch(doc, {}, SmpSchema()) == doc
    assert (doc, patch) == before
