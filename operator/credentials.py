"""Which Secrets a source may read: only those labelled ``restlake.io/source-credentials: "true"``.

Every ``secretRef`` of a spec becomes an env var of the source's pods, and the spec decides where the
fetcher sends it. Without this check anyone allowed to create an IngestionSource could ship any
Secret of the namespace (a database password, a cloud key) to a URL of their choosing. The label is
the namespace owner's consent, given per Secret.

The operator reads Secret *metadata* only (``Kube.metadata``): it never holds the values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from restlake.contracts.source.auth import SecretRef
from restlake.contracts.spec import IngestionSource
from restlake.operator.conditions import CREDENTIALS_ALLOWED, Condition

LABEL = "restlake.io/source-credentials"
NOT_LABELLED = "SecretNotLabelled"
NOT_FOUND = "SecretNotFound"

# The metadata of a Secret in the source's namespace, or None when it does not exist.
SecretLookup = Callable[[str], Mapping[str, Any] | None]


def secret_fields(model: BaseModel, path: str = "spec") -> Iterator[tuple[str, SecretRef]]:
    """Every ``SecretRef`` in ``model`` with its YAML path, wherever in the spec it sits.

    A walk rather than a list of known fields, so a ``secretRef`` added to any part of the spec is
    checked (and rendered as an env var) without touching this module.
    """
    for attr, info in type(model).model_fields.items():
        value = getattr(model, attr)
        where = f"{path}.{info.alias or attr}"
        yield from _found(value, where)


def _found(value: Any, where: str) -> Iterator[tuple[str, SecretRef]]:
    if isinstance(value, SecretRef):
        yield where, value
    elif isinstance(value, BaseModel):
        yield from secret_fields(value, where)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _found(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _found(item, f"{where}.{key}")


def check(source: IngestionSource, lookup: SecretLookup) -> Condition:
    """``CredentialsAllowed``: True when every referenced Secret exists and carries the label.

    The message names each offending Secret with the spec field that refers to it, and says what
    to do; Secret values never appear (only names).
    """
    refused: list[str] = []
    unlabelled = False
    seen: dict[str, Mapping[str, Any] | None] = {}
    for field, ref in secret_fields(source.spec):
        if ref.name not in seen:
            seen[ref.name] = lookup(ref.name)
        meta = seen[ref.name]
        if meta is None:
            refused.append(f"Secret {ref.name} ({field}) does not exist")
        elif ((meta.get("metadata") or {}).get("labels") or {}).get(LABEL) != "true":
            unlabelled = True
            refused.append(f'Secret {ref.name} ({field}) is not labelled {LABEL}: "true"')
    if not refused:
        if not seen:
            return Condition(
                CREDENTIALS_ALLOWED, "True", "NoSecretsReferenced", "the spec references no Secret"
            )
        return Condition(
            CREDENTIALS_ALLOWED,
            "True",
            "SecretsLabelled",
            f"Secrets {', '.join(sorted(seen))} are labelled {LABEL}",
        )
    return Condition(
        CREDENTIALS_ALLOWED,
        "False",
        NOT_LABELLED if unlabelled else NOT_FOUND,
        "; ".join(refused) + f"; the fetcher is held at zero replicas until each exists and is labelled "
        f"(kubectl label secret <name> {LABEL}=true)",
    )
