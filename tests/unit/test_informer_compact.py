"""The informer's default transform: equal objects, shared strings."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from lbctl.kube.informer import compact

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), json_values))
def test_compact_keeps_the_object_equal(obj: dict[str, object]) -> None:
    assert compact(obj) == obj


def test_decoded_objects_share_keys_and_short_values() -> None:
    raw = json.dumps(
        {"metadata": {"name": "web"}, "spec": {"ports": [{"protocol": "TCP"}]}, "x": "y" * 65}
    )
    a, b = compact(json.loads(raw)), compact(json.loads(raw))
    (ka,), (kb,) = a["metadata"].keys(), b["metadata"].keys()
    assert ka is kb
    assert a["spec"]["ports"][0]["protocol"] is b["spec"]["ports"][0]["protocol"]
    # Long strings (uids, messages) are left alone: interning them would only grow the table.
    assert a["x"] == b["x"] and a["x"] is not b["x"]
