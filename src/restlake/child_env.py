"""The environment a child process starts with: this process's, adjusted.

Configuration is read through the settings models; a child's environment is the one place where
the whole of ``os.environ`` is handed on, because the child (Kafka, MinIO, Spark daemons, Prefect,
``go install``) reads its own variables, PATH and HOME included, which restlake does not model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping


def child_env(
    overrides: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    without: Iterable[str] = (),
) -> dict[str, str]:
    """``base`` (this process's environment when None) minus ``without``, then ``overrides`` on top."""
    dropped = set(without)
    env = {
        name: value for name, value in (os.environ if base is None else base).items() if name not in dropped
    }
    env.update(overrides or {})
    return env
