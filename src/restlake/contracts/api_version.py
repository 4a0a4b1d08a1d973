"""The API group and version of restlake's custom resources: the one place ``v1alpha1`` is written.

The models need it as a ``Literal`` type (so a document with another apiVersion is refused), the CRD
generator, the operator's kopf handlers and its Kubernetes calls as strings; the strings are read off
the type, so a version bump is one edit here.
"""

from __future__ import annotations

import typing
from typing import Final, Literal

ApiVersion = Literal["restlake.io/v1alpha1"]
API_VERSION: Final[str] = typing.get_args(ApiVersion)[0]
API_GROUP, _, VERSION = API_VERSION.partition("/")
