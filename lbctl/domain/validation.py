"""kube-apiserver's Service validation, as pure functions over :class:`Service`.

Three entry points mirror kube-apiserver 1.34 (``pkg/apis/core/validation``):

- :func:`validate_service` — ``ValidateService``: metadata, then every spec rule.
- :func:`validate_service_update` — ``ValidateServiceUpdate``: metadata update rules,
  the rules comparing new with old, then :func:`validate_service` on the new object
  (so a metadata or ``loadBalancerClass`` error may be reported twice, as upstream).
- :func:`validate_service_status_update` — ``ValidateServiceStatusUpdate``.

They expect the object kube-apiserver would validate at that point: defaulted
(:func:`lbctl.domain.defaults.apply_defaults`), with IP families initialised
(:func:`lbctl.domain.defaults.init_ip_families`) and, on update, with the stored
``resourceVersion`` copied in when the client sent none (Services allow
unconditional updates).  None of them raises on odd input: every problem becomes a
:class:`~lbctl.domain.fielderrors.FieldError`, in upstream's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from lbctl.domain import names
from lbctl.domain.fielderrors import (
    FieldError,
    FieldErrors,
    Path,
    forbidden,
    invalid,
    required,
    too_long,
)
from lbctl.domain.service import ObjectMeta, Service
from lbctl.domain.validation_ips import GoLiteral, go_quote, go_strings
from lbctl.domain.validation_spec import label_errors, spec_errors
from lbctl.domain.validation_spec import spec_update_errors as _spec_update_errors
from lbctl.domain.validation_status import load_balancer_status_errors

__all__ = [
    "MAX_ANNOTATIONS_BYTES",
    "TOPOLOGY_HINTS_ANNOTATION",
    "TOPOLOGY_MODE_ANNOTATION",
    "metadata_errors",
    "metadata_update_errors",
    "validate_service",
    "validate_service_status_update",
    "validate_service_update",
]

MAX_ANNOTATIONS_BYTES: Final = 256 * 1024
TOPOLOGY_MODE_ANNOTATION: Final = "service.kubernetes.io/topology-mode"
TOPOLOGY_HINTS_ANNOTATION: Final = "service.kubernetes.io/topology-aware-hints"
_STANDARD_FINALIZERS: Final = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
_IMMUTABLE: Final = "field is immutable"

_META: Final = Path.root("metadata")


def _annotation_errors(annotations: Mapping[str, str]) -> list[FieldError]:
    path = _META.child("annotations")
    errors: list[FieldError] = []
    for key in annotations:
        errors.extend(invalid(path, key, m) for m in names.qualified_name_errors(key.lower()))
    size = sum(names.byte_len(k) + names.byte_len(v) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        errors.append(too_long(path, MAX_ANNOTATIONS_BYTES))
    return errors


def _finalizer_errors(finalizers: Sequence[str]) -> list[FieldError]:
    path = _META.child("finalizers")
    errors: list[FieldError] = []
    for finalizer in finalizers:
        errors.extend(invalid(path, finalizer, m) for m in names.qualified_name_errors(finalizer))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        detail = "finalizer orphan and foregroundDeletion cannot be both set"
        errors.append(invalid(path, go_strings(finalizers), detail))
    return errors


def _kube_finalizer_errors(finalizers: Sequence[str]) -> list[FieldError]:
    detail = "name is neither a standard finalizer name nor is it fully qualified"
    return [
        invalid(_META.child("finalizers").index(i), name, detail)
        for i, name in enumerate(finalizers)
        if "/" not in name and name not in _STANDARD_FINALIZERS
    ]


def _common_meta_errors(meta: ObjectMeta) -> list[FieldError]:
    errors: list[FieldError] = []
    errors.extend(label_errors(meta.labels, _META.child("labels")))
    errors.extend(_annotation_errors(meta.annotations))
    errors.extend(_finalizer_errors(meta.finalizers))
    return errors


def metadata_errors(meta: ObjectMeta) -> list[FieldError]:
    """``ValidateObjectMeta`` for a Service: names, labels, annotations, finalizers."""
    errors: list[FieldError] = []
    name_path = _META.child("name")
    if not meta.name:
        errors.append(required(name_path, "name or generateName is required"))
    else:
        errors.extend(
            invalid(name_path, meta.name, m) for m in names.dns1035_label_errors(meta.name)
        )
    ns_path = _META.child("namespace")
    if not meta.namespace:
        errors.append(required(ns_path))
    else:
        errors.extend(
            invalid(ns_path, meta.namespace, m) for m in names.dns1123_label_errors(meta.namespace)
        )
    if meta.generation is not None and meta.generation < 0:
        detail = "must be greater than or equal to 0"
        errors.append(invalid(_META.child("generation"), meta.generation, detail))
    errors.extend(_common_meta_errors(meta))
    errors.extend(_kube_finalizer_errors(meta.finalizers))
    return errors


def _go_time(value: object) -> object:
    """A timestamp as Go prints a ``metav1.Time`` (``null`` when unset)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return GoLiteral(moment.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"))


def metadata_update_errors(new: ObjectMeta, old: ObjectMeta) -> list[FieldError]:
    """``ValidateObjectMetaUpdate``: what an update may not do to the metadata."""
    errors: list[FieldError] = []
    if old.deletion_timestamp:
        added = sorted(set(new.finalizers) - set(old.finalizers))
        if added:
            detail = (
                "no new finalizers can be added if the object is being deleted,"
                " found new finalizers []string{" + ", ".join(go_quote(f) for f in added) + "}"
            )
            errors.append(forbidden(_META.child("finalizers"), detail))
    if not new.resource_version:
        errors.append(
            invalid(_META.child("resourceVersion"), "", "must be specified for an update")
        )
    if (new.generation or 0) < (old.generation or 0):
        detail = "must not be decremented"
        errors.append(invalid(_META.child("generation"), new.generation or 0, detail))
    immutables: list[tuple[str, object, object]] = [
        ("name", new.name, old.name),
        ("namespace", new.namespace, old.namespace),
        ("uid", new.uid, old.uid),
        (
            "creationTimestamp",
            _go_time(new.extra.get("creationTimestamp")),
            _go_time(old.extra.get("creationTimestamp")),
        ),
        ("deletionTimestamp", _go_time(new.deletion_timestamp), _go_time(old.deletion_timestamp)),
        (
            "deletionGracePeriodSeconds",
            new.extra.get("deletionGracePeriodSeconds"),
            old.extra.get("deletionGracePeriodSeconds"),
        ),
    ]
    for name, new_value, old_value in immutables:
        if new_value != old_value:
            errors.append(invalid(_META.child(name), new_value, _IMMUTABLE))
    errors.extend(_common_meta_errors(new))
    errors.extend(_kube_finalizer_errors(new.finalizers))
    return errors


def _topology_errors(meta: ObjectMeta) -> list[FieldError]:
    mode = meta.annotations.get(TOPOLOGY_MODE_ANNOTATION)
    hints = meta.annotations.get(TOPOLOGY_HINTS_ANNOTATION)
    if mode is None or hints is None or mode == hints:
        return []
    path = _META.child("annotations").key(TOPOLOGY_MODE_ANNOTATION)
    detail = f"must match annotations[{TOPOLOGY_HINTS_ANNOTATION}] when both are specified"
    return [invalid(path, mode, detail)]


def validate_service(svc: Service) -> FieldErrors:
    """Create-time validation (``ValidateService``); empty means valid."""
    errors = FieldErrors(metadata_errors(svc.metadata))
    errors.extend(_topology_errors(svc.metadata))
    errors.extend(spec_errors(svc))
    return errors


def validate_service_update(new: Service, old: Service) -> FieldErrors:
    """Update validation (``ValidateServiceUpdate``) of ``new`` against stored ``old``."""
    errors = FieldErrors(metadata_update_errors(new.metadata, old.metadata))
    errors.extend(_spec_update_errors(new, old))
    errors.extend(validate_service(new))
    return errors


def validate_service_status_update(
    new: Service, old: Service, *, strict: bool = False
) -> FieldErrors:
    """``services/status`` update validation (``ValidateServiceStatusUpdate``).

    The spec checked against is ``old``'s: a status update cannot change the spec,
    and kube-apiserver replaces it with the stored one before validating.  With
    ``strict``, ingress ports and ``status.conditions`` are checked too (rules
    kube-apiserver does not enforce; see :mod:`lbctl.domain.validation_status`).
    """
    errors = FieldErrors(metadata_update_errors(new.metadata, old.metadata))
    errors.extend(load_balancer_status_errors(new.status, spec=old.spec, strict=strict))
    return errors
