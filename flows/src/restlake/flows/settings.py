"""Where the flows report: the Prefect server of ``PREFECT_API_URL``, Prefect's own variable.

Prefect's client reads the variable itself; restlake reads it here only to decide whether a local
server must be started (``restlake flows serve``) or a deployment has anywhere to go.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from restlake.settings import RestlakeSettings


class PrefectSettings(RestlakeSettings):
    """The Prefect server the flows report to."""

    model_config = SettingsConfigDict(env_prefix="PREFECT_")

    api_url: str | None = Field(
        None, description="API of the Prefect server (PREFECT_API_URL); unset means none is configured."
    )
