"""CRD structural schemas: validation as kube-apiserver reports it, pruning, defaulting.

Validation rows are (case id, schema of ``spec.x``, value of ``spec.x`` or ABSENT,
expected errors as (field, reason, message) in order).  Messages are kube-apiserver's
(kube-openapi ``validate``/``errors`` turned into field errors by apiextensions).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl.apimachinery.schema import (
    apply_defaults,
    check_schema,
    prune,
    prune_nulls,
    validate,
)
from lbctl.apimachinery.schema_formats import check_format, go_float, go_repr
from lbctl.domain.fielderrors import FieldError, FieldErrors, Reason

JSON = dict[str, Any]
Expected = list[tuple[str, str, str]]

INVALID = "FieldValueInvalid"
TYPE = "FieldValueTypeInvalid"
REQUIRED = "FieldValueRequired"
DUPLICATE = "FieldValueDuplicate"
UNSUPPORTED = "FieldValueNotSupported"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
INTERNAL = "InternalError"

ABSENT = object()

LABEL_SELECTOR: JSON = {
    "type": "object",
    "x-kubernetes-map-type": "atomic",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {
                        "type": "string",
                        "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                    },
                    "values": {
                        "type": "array",
                        "items": {"type": "string"},
                        "x-kubernetes-list-type": "atomic",
                    },
                },
            },
        },
    },
}

IPPOOL: JSON = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["addresses"],
            "properties": {
                "addresses": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "autoAssign": {"type": "boolean", "default": True},
                "avoidBuggyIPs": {"type": "boolean", "default": False},
                "serviceAllocation": {
                    "type": "object",
                    "properties": {
                        "priority": {"type": "integer"},
                        "namespaces": {
                            "type": "array",
                            "items": {"type": "string"},
                            "x-kubernetes-list-type": "set",
                        },
                        "namespaceSelectors": {"type": "array", "items": LABEL_SELECTOR},
                        "serviceSelectors": {"type": "array", "items": LABEL_SELECTOR},
                    },
                },
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def pool(**spec: Any) -> JSON:
    return {
        "apiVersion": "lbctl.io/v1alpha1",
        "kind": "IPPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": ["10.0.0.0/24"], **spec},
    }


def triples(errors: FieldErrors) -> Expected:
    return [(e.field, e.reason.value, e.message) for e in errors]


def wrap(fragment: JSON) -> JSON:
    return {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"x": fragment}}},
    }


def at_x(value: object) -> JSON:
    return {"spec": {} if value is ABSENT else {"x": value}}


def type_err(field: str, expected: str, got: str, name: str | None = None) -> tuple[str, str, str]:
    name = field if name is None else name
    return (
        field,
        TYPE,
        f'Invalid value: "{got}": {name} in body must be of type {expected}: "{got}"',
    )


def inv(value: str, detail: str, field: str = "spec.x") -> tuple[str, str, str]:
    return (field, INVALID, f"Invalid value: {value}: {field} in body {detail}")


STR = {"type": "string"}
SELECTOR_OPS = '"In", "NotIn", "Exists", "DoesNotExist"'

CASES: list[tuple[str, JSON, object, Expected]] = [
    # --- type --------------------------------------------------------------------------
    ("type-ok", STR, "a", []),
    ("type-int-for-string", STR, 5, [type_err("spec.x", "string", "integer")]),
    ("type-string-for-int", {"type": "integer"}, "5", [type_err("spec.x", "integer", "string")]),
    ("type-null", {"type": "integer"}, None, [type_err("spec.x", "integer", "null")]),
    ("type-bool-not-int", {"type": "integer"}, True, [type_err("spec.x", "integer", "boolean")]),
    ("type-float-whole-is-int", {"type": "integer"}, 3.0, []),
    ("type-float-not-int", {"type": "integer"}, 3.5, [type_err("spec.x", "integer", "number")]),
    ("type-int-is-number", {"type": "number"}, 3, []),
    ("type-object-for-array", {"type": "array"}, {}, [type_err("spec.x", "array", "object")]),
    ("type-array-for-object", {"type": "object"}, [], [type_err("spec.x", "object", "array")]),
    # kube-openapi lets a list through a string with a format; lbctl does not.
    (
        "type-list-for-formatted-string",
        {"type": "string", "format": "ipv4"},
        ["1.2.3.4"],
        [type_err("spec.x", "string", "array")],
    ),
    ("absent-is-fine", {"type": "integer", "minimum": 5}, ABSENT, []),
    ("nullable-null", {"type": "string", "nullable": True}, None, []),
    (
        "nullable-null-not-in-enum",
        {"type": "string", "nullable": True, "enum": ["a"]},
        None,
        [("spec.x", UNSUPPORTED, 'Unsupported value: null: supported values: "a"')],
    ),
    # --- int-or-string -----------------------------------------------------------------
    ("int-or-string-int", {"x-kubernetes-int-or-string": True}, 80, []),
    ("int-or-string-string", {"x-kubernetes-int-or-string": True}, "50%", []),
    (
        "int-or-string-bool",
        {"x-kubernetes-int-or-string": True},
        True,
        [type_err("spec.x", "integer,string", "boolean")],
    ),
    (
        "int-or-string-float",
        {"x-kubernetes-int-or-string": True},
        1.5,
        [type_err("spec.x", "integer,string", "number")],
    ),
    # --- enum --------------------------------------------------------------------------
    (
        "enum-string",
        {"type": "string", "enum": ["a", "b"]},
        "x",
        [("spec.x", UNSUPPORTED, 'Unsupported value: "x": supported values: "a", "b"')],
    ),
    (
        "enum-number",
        {"type": "integer", "enum": [1, 2]},
        3,
        [("spec.x", UNSUPPORTED, 'Unsupported value: 3: supported values: "1", "2"')],
    ),
    ("enum-number-by-value", {"type": "number", "enum": [1, 2.5]}, 1.0, []),
    (
        "enum-bool-is-not-one",
        {"enum": [1]},
        True,
        [("spec.x", UNSUPPORTED, 'Unsupported value: true: supported values: "1"')],
    ),
    (
        "enum-after-type-error",
        {"type": "string", "enum": ["a"]},
        7,
        [
            type_err("spec.x", "string", "integer"),
            ("spec.x", UNSUPPORTED, 'Unsupported value: 7: supported values: "a"'),
        ],
    ),
    # --- strings: maxLength, then minLength, then pattern (first failure only) ----------
    (
        "max-length",
        {"type": "string", "maxLength": 3, "pattern": "^[0-9]+$"},
        "abcd",
        [("spec.x", TOO_LONG, "Too long: may not be longer than 3")],
    ),
    ("max-length-counts-characters", {"type": "string", "maxLength": 3}, "héé", []),
    (
        "min-length",
        {"type": "string", "minLength": 1, "pattern": "^[0-9]+$"},
        "",
        [inv('""', "should be at least 1 chars long")],
    ),
    (
        "pattern",
        {"type": "string", "pattern": "^[a-z]+$"},
        "ABC",
        [inv('"ABC"', "should match '^[a-z]+$'")],
    ),
    ("pattern-is-a-search", {"type": "string", "pattern": "[0-9]"}, "ab1", []),
    # --- numbers -----------------------------------------------------------------------
    (
        "minimum",
        {"type": "integer", "minimum": 0},
        -1,
        [inv("-1", "should be greater than or equal to 0")],
    ),
    ("minimum-inclusive", {"type": "integer", "minimum": 0}, 0, []),
    (
        "exclusive-minimum",
        {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
        0,
        [inv("0", "should be greater than 0")],
    ),
    (
        "maximum",
        {"type": "number", "maximum": 1.5},
        2.0,
        [inv("2", "should be less than or equal to 1.5")],
    ),
    (
        "exclusive-maximum",
        {"type": "number", "maximum": 1.5, "exclusiveMaximum": True},
        1.5,
        [inv("1.5", "should be less than 1.5")],
    ),
    (
        "maximum-integer-truncates-bound",
        {"type": "integer", "maximum": 2.5},
        3,
        [inv("3", "should be less than or equal to 2")],
    ),
    (
        "maximum-go-float-rendering",
        {"type": "number", "maximum": 10},
        1e6,
        [inv("1e+06", "should be less than or equal to 10")],
    ),
    (
        "min-and-max-both",
        {"type": "integer", "minimum": 5, "maximum": 1},
        3,
        [
            inv("3", "should be greater than or equal to 5"),
            inv("3", "should be less than or equal to 1"),
        ],
    ),
    (
        "multiple-of",
        {"type": "integer", "multipleOf": 2},
        7,
        [inv("7", "should be a multiple of 2")],
    ),
    ("multiple-of-ok", {"type": "integer", "multipleOf": 2}, -8, []),
    (
        "multiple-of-float",
        {"type": "number", "multipleOf": 0.1},
        0.25,
        [inv("0.25", "should be a multiple of 0.1")],
    ),
    # --- arrays ------------------------------------------------------------------------
    (
        "min-items",
        {"type": "array", "minItems": 1, "items": STR},
        [],
        [inv("0", "should have at least 1 items")],
    ),
    (
        "max-items",
        {"type": "array", "maxItems": 3, "items": STR},
        ["a", "b", "c", "d", "e"],
        [("spec.x", TOO_MANY, "Too many: 5: must have at most 3 items")],
    ),
    (
        "items-before-counts",
        {"type": "array", "minItems": 3, "items": STR},
        ["a", 1],
        [type_err("spec.x[1]", "string", "integer"), inv("2", "should have at least 3 items")],
    ),
    (
        "unique-items",
        {"type": "array", "uniqueItems": True},
        [{"a": 1}, {"a": 1}],
        [inv('""', "shouldn't contain duplicates")],
    ),
    # --- objects -----------------------------------------------------------------------
    (
        "required",
        {"type": "object", "required": ["a", "b"], "properties": {"a": STR, "b": STR}},
        {"b": "x"},
        [("spec.x.a", REQUIRED, "Required value")],
    ),
    (
        "required-after-properties",
        {"type": "object", "required": ["a"], "properties": {"a": STR, "b": STR}},
        {"b": 1},
        [type_err("spec.x.b", "string", "integer"), ("spec.x.a", REQUIRED, "Required value")],
    ),
    ("null-property-is-present", {"type": "object", "required": ["a"]}, {"a": None}, []),
    (
        "additional-properties-schema-path",
        {"type": "object", "additionalProperties": STR},
        {"app": "x", "tier": 3},
        [type_err("spec.x.tier", "string", "integer")],
    ),
    (
        "additional-properties-false",
        {"type": "object", "additionalProperties": False, "properties": {"a": STR}},
        {"a": "x", "b": "y"},
        [("spec.x", INVALID, 'Invalid value: "b": spec.x.b in body is a forbidden property')],
    ),
    (
        "min-properties-stops-there",
        {"type": "object", "minProperties": 2, "properties": {"a": STR}},
        {"a": 1},
        [inv("1", "should have at least 2 properties")],
    ),
    (
        "max-properties",
        {"type": "object", "maxProperties": 1},
        {"a": 1, "b": 2},
        [("spec.x", TOO_MANY, "Too many: 2: must have at most 1 items")],
    ),
    ("unknown-fields-allowed", {"type": "object", "properties": {"a": STR}}, {"z": 1}, []),
    (
        "preserve-unknown-fields",
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        {"z": {"deep": [1]}},
        [],
    ),
    (
        "array-item-object-path",
        {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        [{"n": 1}, {"n": "2"}],
        [type_err("spec.x[1].n", "integer", "string")],
    ),
    # --- formats -----------------------------------------------------------------------
    ("ipv4-ok", {"type": "string", "format": "ipv4"}, "192.168.0.1", []),
    (
        "ipv4-bad",
        {"type": "string", "format": "ipv4"},
        "1.2.3",
        [type_err("spec.x", "ipv4", "1.2.3")],
    ),
    (
        "ipv4-leading-zero",
        {"type": "string", "format": "ipv4"},
        "010.0.0.1",
        [type_err("spec.x", "ipv4", "010.0.0.1")],
    ),
    (
        "ipv6-not-v4",
        {"type": "string", "format": "ipv6"},
        "10.0.0.1",
        [type_err("spec.x", "ipv6", "10.0.0.1")],
    ),
    ("cidr-ok", {"type": "string", "format": "cidr"}, "10.0.0.1/8", []),
    (
        "cidr-bad",
        {"type": "string", "format": "cidr"},
        "10.0.0.0/33",
        [type_err("spec.x", "cidr", "10.0.0.0/33")],
    ),
    ("date-time-ok", {"type": "string", "format": "date-time"}, "2024-01-02T03:04:05Z", []),
    (
        "date-time-bad",
        {"type": "string", "format": "date-time"},
        "2024-02-30T03:04:05Z",
        [type_err("spec.x", "date-time", "2024-02-30T03:04:05Z")],
    ),
    ("unsupported-format-ignored", {"type": "integer", "format": "int32"}, 2**40, []),
    ("format-name-is-case-sensitive", {"type": "string", "format": "IPv4"}, "nope", []),
    (
        "format-on-a-number",
        {"type": "string", "format": "ipv4"},
        5,
        [type_err("spec.x", "ipv4", "int64")],
    ),
    (
        "format-on-a-bool",
        {"type": "string", "format": "ipv4"},
        True,
        [type_err("spec.x", "ipv4", "")],
    ),
    # --- x-kubernetes-list-type (reported after schema errors) --------------------------
    (
        "set-duplicates-second-occurrence-only",
        {"type": "array", "items": STR, "x-kubernetes-list-type": "set"},
        ["a", "b", "a", "a", "b"],
        [
            ("spec.x[2]", DUPLICATE, 'Duplicate value: "a"'),
            ("spec.x[4]", DUPLICATE, 'Duplicate value: "b"'),
        ],
    ),
    (
        "set-go-typed-scalars",
        {"type": "array", "x-kubernetes-list-type": "set"},
        [1, 1.0, True, "1"],
        [],
    ),
    (
        "set-compound",
        {"type": "array", "x-kubernetes-list-type": "set"},
        [{"a": [1]}, {"a": [1]}],
        [
            (
                "spec.x[1]",
                DUPLICATE,
                'Duplicate value: map[string]interface {}{"a":[]interface {}{1}}',
            )
        ],
    ),
    (
        "map-single-key",
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": STR, "port": {"type": "integer"}}},
        },
        [{"name": "a", "port": 1}, {"name": "a", "port": 2}, {"port": 3}, {"port": 4}],
        [
            ("spec.x[1]", DUPLICATE, 'Duplicate value: map[string]interface {}{"name":"a"}'),
            ("spec.x[3]", DUPLICATE, "Duplicate value: map[string]interface {}{}"),
        ],
    ),
    (
        "map-two-keys",
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object"},
        },
        [
            {"port": 80, "protocol": "TCP"},
            {"port": 80, "protocol": "UDP"},
            {"port": 80, "protocol": "TCP"},
        ],
        [
            (
                "spec.x[2]",
                DUPLICATE,
                'Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}',
            )
        ],
    ),
    (
        "map-item-not-object",
        {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["n"]},
        [{"n": "a"}, "b"],
        [
            (
                "spec.x[1]",
                INVALID,
                'Invalid value: "b": must be an object for an array of list-type map',
            )
        ],
    ),
    (
        "set-inside-map-uses-key-path",
        {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": STR,
                "x-kubernetes-list-type": "set",
            },
        },
        {"web": ["a", "a"]},
        [("spec.x[web][1]", DUPLICATE, 'Duplicate value: "a"')],
    ),
    # --- anyOf / oneOf / allOf / not ---------------------------------------------------
    (
        "any-of-none",
        {"type": "string", "anyOf": [{"minLength": 5}, {"pattern": "^a", "minLength": 2}]},
        "b",
        [
            (
                "<nil>",
                INVALID,
                'Invalid value: "": "spec.x" must validate at least one schema (anyOf)',
            ),
            inv('"b"', "should be at least 5 chars long"),
        ],
    ),
    ("any-of-one", {"type": "string", "anyOf": [{"minLength": 5}, {"pattern": "^b"}]}, "b", []),
    (
        "one-of-none",
        {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        {},
        [
            (
                "<nil>",
                INVALID,
                'Invalid value: "": "spec.x" must validate one and only one schema (oneOf).'
                " Found none valid",
            ),
            ("spec.x.a", REQUIRED, "Required value"),
        ],
    ),
    (
        "one-of-two",
        {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        {"a": 1, "b": 2},
        [
            (
                "<nil>",
                INVALID,
                'Invalid value: "": "spec.x" must validate one and only one schema (oneOf).'
                " Found 2 valid alternatives",
            )
        ],
    ),
    (
        "all-of-some",
        {"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 5}, {"minimum": 0}]},
        9,
        [
            inv("9", "should be less than or equal to 5"),
            ("<nil>", INVALID, 'Invalid value: "": "spec.x" must validate all the schemas (allOf)'),
        ],
    ),
    (
        "all-of-none",
        {"type": "integer", "allOf": [{"minimum": 10}, {"minimum": 10}]},
        9,
        [
            inv("9", "should be greater than or equal to 10"),
            (
                "<nil>",
                INVALID,
                'Invalid value: "": "spec.x" must validate all the schemas (allOf). None validated',
            ),
        ],
    ),
    (
        "not",
        {"type": "string", "not": {"enum": ["forbidden"]}},
        "forbidden",
        [("<nil>", INVALID, 'Invalid value: "": "spec.x" must not validate the schema (not)')],
    ),
    ("not-ok", {"type": "string", "not": {"enum": ["forbidden"]}}, "fine", []),
]


@pytest.mark.parametrize(
    ("fragment", "value", "expected"),
    [pytest.param(f, v, e, id=i) for i, f, v, e in CASES],
)
def test_validate_table(fragment: JSON, value: object, expected: Expected) -> None:
    assert triples(validate(at_x(value), wrap(fragment))) == expected


IPPOOL_CASES: list[tuple[str, object, Expected]] = [
    ("valid", pool(), []),
    (
        "valid-full",
        pool(
            autoAssign=False,
            serviceAllocation={
                "priority": 1,
                "namespaces": ["a", "b"],
                "namespaceSelectors": [{"matchLabels": {"team": "x"}}],
                "serviceSelectors": [{"matchExpressions": [{"key": "k", "operator": "Exists"}]}],
            },
        ),
        [],
    ),
    (
        "missing-spec",
        {"apiVersion": "lbctl.io/v1alpha1", "kind": "IPPool"},
        [("spec", REQUIRED, "Required value")],
    ),
    ("missing-addresses", {"spec": {}}, [("spec.addresses", REQUIRED, "Required value")]),
    (
        "priority-string",
        pool(serviceAllocation={"priority": "high"}),
        [type_err("spec.serviceAllocation.priority", "integer", "string")],
    ),
    (
        "selector-operator",
        pool(
            serviceAllocation={
                "serviceSelectors": [{"matchExpressions": [{"key": "k", "operator": "Is"}]}]
            }
        ),
        [
            (
                "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator",
                UNSUPPORTED,
                f'Unsupported value: "Is": supported values: {SELECTOR_OPS}',
            )
        ],
    ),
    (
        "selector-label-value",
        pool(serviceAllocation={"namespaceSelectors": [{"matchLabels": {"team": 1}}]}),
        [
            type_err(
                "spec.serviceAllocation.namespaceSelectors[0].matchLabels.team", "string", "integer"
            )
        ],
    ),
    (
        "namespaces-set",
        pool(serviceAllocation={"namespaces": ["a", "a"]}),
        [("spec.serviceAllocation.namespaces[1]", DUPLICATE, 'Duplicate value: "a"')],
    ),
    ("status-anything", {**pool(), "status": {"x": [1, {"y": None}]}}, []),
    ("metadata-not-validated-beyond-object", {**pool(), "metadata": {"name": 5, "labels": []}}, []),
    (
        "metadata-must-be-object",
        {**pool(), "metadata": "p"},
        [type_err("metadata", "object", "string")],
    ),
    (
        "root-not-object",
        [],
        [("<nil>", TYPE, 'Invalid value: "array":  in body must be of type object: "array"')],
    ),
    (
        "root-null",
        None,
        [("<nil>", TYPE, 'Invalid value: "null":  in body must be of type object: "null"')],
    ),
]


@pytest.mark.parametrize(
    ("obj", "expected"), [pytest.param(o, e, id=i) for i, o, e in IPPOOL_CASES]
)
def test_validate_ippool(obj: object, expected: Expected) -> None:
    assert triples(validate(obj, IPPOOL)) == expected


def test_str_is_the_status_message_line() -> None:
    (error,) = validate(pool(serviceAllocation={"priority": "x"}), IPPOOL)
    assert str(error) == (
        'spec.serviceAllocation.priority: Invalid value: "string": '
        'spec.serviceAllocation.priority in body must be of type integer: "string"'
    )
    assert error.as_cause()["reason"] == "FieldValueTypeInvalid"


def test_path_prefixes_fields_and_replaces_nil() -> None:
    schema = {"type": "object", "required": ["a"], "oneOf": [{"required": ["b"]}]}
    assert triples(validate({}, schema, path="spec")) == [
        (
            "spec",
            INVALID,
            'Invalid value: "": "" must validate one and only one schema (oneOf). Found none valid',
        ),
        ("spec.b", REQUIRED, "Required value"),
        ("spec.a", REQUIRED, "Required value"),
    ]


def test_metadata_is_special_only_at_the_root() -> None:
    schema = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "required": ["name"]}},
    }
    assert triples(validate({"metadata": {}}, schema)) == []
    assert triples(validate({"metadata": {}}, schema, path="spec.template")) == [
        ("spec.template.metadata.name", REQUIRED, "Required value")
    ]


def test_identical_errors_are_reported_once() -> None:
    schema = wrap({"type": "string", "allOf": [{"minLength": 3}, {"minLength": 3}]})
    assert triples(validate(at_x("a"), schema)) == [
        inv('"a"', "should be at least 3 chars long"),
        (
            "<nil>",
            INVALID,
            'Invalid value: "": "spec.x" must validate all the schemas (allOf). None validated',
        ),
    ]


def test_invalid_pattern_is_reported_not_raised() -> None:
    (error,) = validate(at_x("a"), wrap({"type": "string", "pattern": "("}))
    assert error.reason is Reason.INVALID
    assert error.message.startswith(
        'Invalid value: "a": spec.x in body should match \'(, but pattern is invalid: '
    )


def test_deep_nesting_never_raises() -> None:
    deep: Any = "leaf"
    for _ in range(20_000):
        deep = [deep]
    obj = pool(
        addresses=[deep, deep],
        serviceAllocation={
            "namespaces": [deep, deep],
            "serviceSelectors": [{"matchExpressions": [{"key": "k", "operator": deep}]}],
            "priority": {"x": deep},
        },
    )
    obj["status"] = {"deep": deep}
    errors = validate(obj, IPPOOL)
    fields = [e.field for e in errors]
    assert fields[:2] == ["spec.addresses[0]", "spec.addresses[1]"]
    assert ("spec.serviceAllocation.namespaces[0]", INVALID) in [
        (e.field, e.reason.value) for e in errors
    ]
    for e in errors:
        assert len(e.message) < 5_000
    kept = prune(obj, IPPOOL)["status"]["deep"]
    assert kept is not deep and nesting(kept) == nesting(deep) == 20_000
    assert apply_defaults(obj, IPPOOL)["spec"]["autoAssign"] is True
    assert nesting(prune_nulls(obj, IPPOOL)["spec"]["addresses"]) == 20_001


def nesting(value: Any) -> int:
    """Depth of nested lists (iteratively: == would overflow the stack)."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


# --- formats and Go rendering ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value", "ok"),
    [
        ("ipv4", "255.255.255.255", True),
        ("ipv4", "256.0.0.1", False),
        ("ipv4", "::ffff:1.2.3.4", True),  # govalidator: parses as an IP and contains "."
        ("ipv6", "fe80::1", True),
        ("ipv6", "fe80::1%eth0", False),
        ("cidr", "::/0", True),
        ("cidr", "fe80::/129", False),
        ("cidr", "10.0.0.0", False),
        ("cidr", "10.0.0.0/255.0.0.0", False),
        ("cidr", "10.0.0.0/08", True),
        ("date-time", "2024-01-02t03:04:05.123+02:00", True),
        ("date-time", "2024-01-02T24:00:00Z", False),
        ("date-time", "2024-01-02 03:04:05Z", False),
        ("datetime", "2024-01-02T03:04:05", False),
        ("date", "2024-02-29", True),
        ("date", "2023-02-29", False),
        ("mac", "00:1a:2b:3c:4d:5e", True),
        ("mac", "00:1a:2b:3c:4d", False),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", True),
        ("uuid4", "123e4567-e89b-12d3-a456-426614174000", False),
        ("hostname", "node-1.example.com", True),
        ("hostname", "-node", False),
        ("byte", "aGVsbG8=", True),
        ("byte", "aGVsbG8", False),
        ("password", "", True),
    ],
)
def test_check_format(fmt: str, value: str, ok: bool) -> None:
    assert check_format(fmt, value) is ok


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (2.5, "2.5"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (-0.0, "-0"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_go_repr() -> None:
    value = {"b": [1, 2.5, None, True], "a": "x"}
    assert go_repr(value) == (
        'map[string]interface {}{"a":"x", "b":[]interface {}{1, 2.5, interface {}(nil), true}}'
    )


# --- pruning ------------------------------------------------------------------------------

OBJ_A: JSON = {"type": "object", "properties": {"a": STR}}

PRUNE_CASES: list[tuple[str, JSON, object, object]] = [
    (
        "root-unknown-dropped-meta-kept",
        {"type": "object", "properties": {"spec": OBJ_A}},
        {
            "apiVersion": "v",
            "kind": "K",
            "metadata": {"x": 1},
            "spec": {"a": "1", "b": 2},
            "junk": 1,
        },
        {"apiVersion": "v", "kind": "K", "metadata": {"x": 1}, "spec": {"a": "1"}},
    ),
    (
        "preserve-keeps-unknown-prunes-known",
        {
            "type": "object",
            "properties": {
                "status": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": OBJ_A},
                }
            },
        },
        {"status": {"free": {"z": 1}, "known": {"a": "1", "b": 2}}},
        {"status": {"free": {"z": 1}, "known": {"a": "1"}}},
    ),
    (
        "preserve-at-root",
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"spec": OBJ_A},
        },
        {"x": {"y": 1}, "spec": {"a": "1", "b": 2}},
        {"x": {"y": 1}, "spec": {"a": "1"}},
    ),
    (
        "additional-properties-schema",
        {"type": "object", "properties": {"m": {"type": "object", "additionalProperties": OBJ_A}}},
        {"m": {"k1": {"a": "1", "b": 2}, "k2": {}}},
        {"m": {"k1": {"a": "1"}, "k2": {}}},
    ),
    (
        "items",
        {"type": "object", "properties": {"l": {"type": "array", "items": OBJ_A}}},
        {"l": [{"a": "1", "b": 2}, "scalar", [{"c": 3}]]},
        {"l": [{"a": "1"}, "scalar", [{}]]},
    ),
    (
        "no-schema-below-additional-properties-true",
        {"type": "object", "properties": {"m": {"type": "object", "additionalProperties": True}}},
        {"m": {"k": [{"a": 1}, 2, [[{"b": 3}]]], "s": "x"}},
        {"m": {"k": [{}, 2, [[{}]]], "s": "x"}},
    ),
    (
        "type-mismatch-empties-object",
        {"type": "object", "properties": {"s": STR}},
        {"s": {"x": 1}},
        {"s": {}},
    ),
    (
        "embedded-resource",
        {
            "type": "object",
            "properties": {
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": OBJ_A},
                }
            },
        },
        {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"b": 1}, "x": 1}},
        {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}},
    ),
    ("scalar-root", {"type": "object"}, 5, 5),
]


@pytest.mark.parametrize(
    ("schema", "obj", "expected"), [pytest.param(s, o, e, id=i) for i, s, o, e in PRUNE_CASES]
)
def test_prune(schema: JSON, obj: object, expected: object) -> None:
    before = copy.deepcopy(obj)
    assert prune(obj, schema) == expected
    assert obj == before


def test_prune_ippool_keeps_only_known_fields() -> None:
    obj = pool(bogus=1, serviceAllocation={"priority": 1, "x": 2})
    obj["extra"] = True
    assert prune(obj, IPPOOL) == pool(serviceAllocation={"priority": 1})


# --- nulls and defaulting -----------------------------------------------------------------

DEFAULTED: JSON = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "flag": {"type": "boolean", "default": True},
                "maybe": {"type": "string", "nullable": True, "default": "d"},
                "plain": {"type": "string"},
                "noDefault": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "default": 1}},
                },
                "withDefault": {
                    "type": "object",
                    "default": {},
                    "properties": {"n": {"type": "integer", "default": 2}},
                },
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"p": {"type": "integer", "default": 80}},
                    },
                },
                "map": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"w": {"type": "integer", "default": 1}},
                    },
                },
            },
        }
    },
}

DEFAULT_CASES: list[tuple[str, object, object]] = [
    ("absent-spec-not-created", {}, {}),
    ("present-spec", {"spec": {}}, {"spec": {"flag": True, "maybe": "d", "withDefault": {"n": 2}}}),
    (
        "set-values-kept",
        {"spec": {"flag": False, "maybe": "m", "withDefault": {"n": 5}}},
        {"spec": {"flag": False, "maybe": "m", "withDefault": {"n": 5}}},
    ),
    (
        "non-nullable-null-defaulted-nullable-kept",
        {"spec": {"flag": None, "maybe": None, "plain": None}},
        {"spec": {"flag": True, "maybe": None, "plain": None, "withDefault": {"n": 2}}},
    ),
    (
        "nested-defaults-inside-present-objects",
        {"spec": {"noDefault": {}, "list": [{}, {"p": 1}, None], "map": {"k": {}}}},
        {
            "spec": {
                "noDefault": {"n": 1},
                "list": [{"p": 80}, {"p": 1}, None],
                "map": {"k": {"w": 1}},
                "flag": True,
                "maybe": "d",
                "withDefault": {"n": 2},
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("obj", "expected"), [pytest.param(o, e, id=i) for i, o, e in DEFAULT_CASES]
)
def test_apply_defaults(obj: object, expected: object) -> None:
    before = copy.deepcopy(obj)
    assert apply_defaults(obj, DEFAULTED) == expected
    assert obj == before


def test_defaults_are_copies() -> None:
    schema = copy.deepcopy(DEFAULTED)
    first = apply_defaults({"spec": {}}, schema)
    first["spec"]["withDefault"]["n"] = 99
    assert schema == DEFAULTED
    assert apply_defaults({"spec": {}}, schema)["spec"]["withDefault"] == {"n": 2}


def test_ippool_defaults() -> None:
    assert apply_defaults(pool(), IPPOOL)["spec"] == {
        "addresses": ["10.0.0.0/24"],
        "autoAssign": True,
        "avoidBuggyIPs": False,
    }


def test_prune_nulls() -> None:
    obj = {"spec": {"flag": None, "maybe": None, "plain": None, "map": {"k": None}, "list": [None]}}
    assert prune_nulls(obj, DEFAULTED) == {
        "spec": {"flag": None, "maybe": None, "map": {}, "list": [None]}
    }
    assert obj["spec"]["plain"] is None


# --- check_schema -------------------------------------------------------------------------


def test_check_schema_accepts_ippool() -> None:
    assert check_schema(IPPOOL) == []
    assert check_schema(DEFAULTED) == []


@pytest.mark.parametrize(
    ("schema", "problems"),
    [
        pytest.param([], ["schema: must be an object, not list"], id="not-a-map"),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "strin"}}},
            ["schema.properties[a].type: unknown type 'strin'"],
            id="unknown-type",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {}}},
            ["schema.properties[a].type: must not be empty for a specified field"],
            id="missing-type",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "string", "maxlength": 3}}},
            ["schema.properties[a]: unknown or unsupported keyword 'maxlength'"],
            id="typo-keyword",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "array"}}},
            ["schema.properties[a].items: must be specified for an array"],
            id="array-without-items",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}},
            [
                'schema.properties[a].default: Invalid value: "string":  in body must be of type'
                ' integer: "string"'
            ],
            id="bad-default",
        ),
        pytest.param(
            {"type": "object", "required": ["b"], "properties": {"a": STR}},
            ["schema.required: not in properties: b"],
            id="required-unknown",
        ),
        pytest.param(
            {"type": "string", "minLength": 3, "maxLength": 2, "pattern": "("},
            [
                "schema: minLength 3 is greater than maxLength 2",
                "schema.pattern: invalid regular expression: missing ), unterminated subpattern"
                " at position 0",
            ],
            id="string-limits",
        ),
        pytest.param(
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["n"],
                "items": {"type": "object", "properties": {"n": STR}},
            },
            ["schema.x-kubernetes-list-map-keys: 'n' must be required or defaulted"],
            id="map-key-optional",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": STR}, "additionalProperties": STR},
            ["schema: properties and additionalProperties are mutually exclusive"],
            id="props-and-additional",
        ),
    ],
)
def test_check_schema_reports(schema: object, problems: list[str]) -> None:
    assert check_schema(schema) == problems


# --- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


def shaped(schema: JSON) -> st.SearchStrategy[Any]:
    """Values that follow ``schema`` loosely: any node may be replaced by arbitrary JSON."""
    t = schema.get("type")
    if "enum" in schema:
        node: st.SearchStrategy[Any] = st.sampled_from(schema["enum"]) | st.text(max_size=4)
    elif t == "object" and "properties" in schema:
        props = {k: shaped(v) for k, v in schema["properties"].items()}
        node = st.fixed_dictionaries({}, optional=props)
    elif t == "object" and isinstance(schema.get("additionalProperties"), dict):
        node = st.dictionaries(
            st.text(max_size=5), shaped(schema["additionalProperties"]), max_size=3
        )
    elif t == "array":
        node = st.lists(shaped(schema.get("items", {})), max_size=4)
    elif t == "string":
        node = st.sampled_from(["a", "b", "10.0.0.0/24"]) | st.text(max_size=6)
    elif t == "integer":
        node = st.integers(min_value=-5, max_value=5)
    elif t == "boolean":
        node = st.booleans()
    else:
        node = json_values
    return st.one_of(node, node, node, json_values)


def well_formed(errors: object) -> None:
    assert isinstance(errors, FieldErrors)
    for e in errors:
        assert isinstance(e, FieldError)
        assert isinstance(e.field, str) and e.field
        assert isinstance(e.reason, Reason)
        assert isinstance(str(e), str)
        json.dumps(e.as_cause())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_validate_never_raises_on_arbitrary_json(value: Any) -> None:
    well_formed(validate(value, IPPOOL))
    well_formed(validate({"spec": value, "status": value, "metadata": value}, IPPOOL))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped(IPPOOL))
def test_pipeline_never_raises_nor_mutates(obj: Any) -> None:
    before = copy.deepcopy(obj)
    well_formed(validate(obj, IPPOOL))
    pruned = prune(obj, IPPOOL)
    defaulted = apply_defaults(prune_nulls(pruned, IPPOOL), IPPOOL)
    well_formed(validate(defaulted, IPPOOL))
    assert obj == before
    assert prune(pruned, IPPOOL) == pruned
    assert apply_defaults(defaulted, IPPOOL) == defaulted


names = st.text(alphabet="abcdefgh-", min_size=1, max_size=6)
selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(names, names, max_size=3),
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {
                    "key": names,
                    "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
                },
                optional={"values": st.lists(names, max_size=3)},
            ),
            max_size=3,
        ),
    },
)
valid_pools = st.fixed_dictionaries(
    {"addresses": st.lists(names, min_size=1, max_size=3)},
    optional={
        "autoAssign": st.booleans(),
        "avoidBuggyIPs": st.booleans(),
        "serviceAllocation": st.fixed_dictionaries(
            {},
            optional={
                "priority": st.integers(min_value=-(2**40), max_value=2**40),
                "namespaces": st.lists(names, unique=True, max_size=4),
                "namespaceSelectors": st.lists(selectors, max_size=2),
                "serviceSelectors": st.lists(selectors, max_size=2),
            },
        ),
    },
).map(
    lambda spec: {
        "apiVersion": "lbctl.io/v1alpha1",
        "kind": "IPPool",
        "metadata": {"name": "p"},
        "spec": spec,
    }
)


@settings(max_examples=200, deadline=None)
@given(valid_pools, json_values)
def test_valid_pools_stay_valid_through_the_pipeline(obj: JSON, junk: Any) -> None:
    assert triples(validate(obj, IPPOOL)) == []
    with_junk = {**obj, "junk": junk, "spec": {**obj["spec"], "junk": junk}}
    final = apply_defaults(prune_nulls(prune(with_junk, IPPOOL), IPPOOL), IPPOOL)
    assert triples(validate(final, IPPOOL)) == []
    assert "junk" not in final and "junk" not in final["spec"]
    assert final["spec"]["autoAssign"] is obj["spec"].get("autoAssign", True)
