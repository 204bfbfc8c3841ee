"""A pure Kubernetes label selector (``metav1.LabelSelector``) with ``matches(labels)``.

Semantics follow apimachinery's ``LabelSelectorAsSelector``:

* ``match_labels`` entries must all be present with the given value;
* ``In``: the key is present and its value is one of ``values``;
* ``NotIn``: the key is absent, or its value is none of ``values``;
* ``Exists`` / ``DoesNotExist``: the key is present / absent;
* an empty selector (no labels, no expressions) matches everything.

``In`` and ``NotIn`` need at least one value, ``Exists`` and ``DoesNotExist`` take none;
:meth:`LabelSelector.problems` lists what is wrong instead of failing at match time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["LabelRequirement", "LabelSelector", "SelectorOperator"]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        op = self.operator
        if op == SelectorOperator.IN:
            return present and labels[self.key] in self.values
        if op == SelectorOperator.NOT_IN:
            return not present or labels[self.key] not in self.values
        if op == SelectorOperator.EXISTS:
            return present
        return op == SelectorOperator.DOES_NOT_EXIST and not present

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.key:
            out.append("a match expression has an empty key")
        try:
            op = SelectorOperator(self.operator)
        except ValueError:
            return [*out, f"unknown operator {self.operator!r} for key {self.key!r}"]
        needs_values = op in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values and not self.values:
            out.append(f"operator {op} for key {self.key!r} needs at least one value")
        if not needs_values and self.values:
            out.append(f"operator {op} for key {self.key!r} takes no values")
        return out


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``matchLabels`` and ``matchExpressions``, all of which must hold (AND)."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    def problems(self) -> list[str]:
        """What makes this selector invalid ([] if nothing)."""
        out = [
            f"matchLabels has an empty key (value {v!r})"
            for k, v in self.match_labels.items()
            if not k
        ]
        for req in self.match_expressions:
            out.extend(req.problems())
        return out

    def to_json(self) -> dict[str, Any]:
        """The Kubernetes JSON shape (``matchLabels`` / ``matchExpressions``)."""
        return {
            "matchLabels": dict(sorted(self.match_labels.items())),
            "matchExpressions": [
                {"key": r.key, "operator": str(r.operator), "values": list(r.values)}
                for r in self.match_expressions
            ],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LabelSelector:
        """Read the Kubernetes JSON shape; raises ``ValueError`` on a wrong shape."""
        labels = obj.get("matchLabels") or {}
        exprs = obj.get("matchExpressions") or []
        if not isinstance(labels, Mapping) or not isinstance(exprs, list):
            raise ValueError(
                "a label selector needs an object matchLabels and a list matchExpressions"
            )
        reqs: list[LabelRequirement] = []
        for e in exprs:
            if not isinstance(e, Mapping):
                raise ValueError(f"a match expression must be an object, got {e!r}")
            reqs.append(
                LabelRequirement(
                    key=str(e.get("key", "")),
                    operator=SelectorOperator(str(e.get("operator", ""))),
                    values=tuple(str(v) for v in e.get("values") or ()),
                )
            )
        return cls(
            match_labels={str(k): str(v) for k, v in labels.items()},
            match_expressions=tuple(reqs),
        )
