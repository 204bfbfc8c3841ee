"""The AWS Network Load Balancer provider.

Pure modules (no I/O, checked by import-linter): :mod:`.annotations`, :mod:`.naming`,
:mod:`.subnets`, :mod:`.plan`, :mod:`.health`, :mod:`.targets`, :mod:`.sgrules`,
:mod:`.ratelimit`. Edge modules talk to AWS: :mod:`.client`, :mod:`.localaws`,
:mod:`.provider` (the provider; :mod:`.inventory`, :mod:`.environment`,
:mod:`.loadbalancers`, :mod:`.targetgroups`, :mod:`.securitygroups` are its parts).

:func:`create` is the ``lbctl.providers`` entry point ``aws``; importing this package
does not import boto3.
"""

from providers.aws.factory import create

__all__ = ["create"]
