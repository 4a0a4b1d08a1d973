"""Settings of the bronze checkpoint (``RESTLAKE_QUALITY_*``): where results live, where metrics go."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from restlake.settings import RestlakeSettings


class QualitySettings(RestlakeSettings):
    """Where the bronze checkpoint keeps its state and results, and the Pushgateway it reports to."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_QUALITY_")

    dir: str | None = Field(
        None,
        description="Local folder of watermarks, GX results and Data Docs, one sub-folder per source "
        "(RESTLAKE_QUALITY_DIR); absent means <lake root>/_quality. GX's stores are files, so an s3a:// "
        "lake root needs this set to a mounted volume, or every run forgets its watermark.",
    )
    pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway base URL (RESTLAKE_QUALITY_PUSHGATEWAY_URL); absent means no "
        "push. A batch job ends before any scrape, so its metrics are pushed, grouped by source.",
    )
    pushgateway_username: str | None = Field(None, description="Basic-auth user for the Pushgateway.")
    # SecretStr: a credential, never in a log line, a repr or the run summary.
    pushgateway_password: SecretStr | None = Field(
        None, description="Basic-auth password for the Pushgateway."
    )
    pushgateway_timeout: float = Field(
        10.0, gt=0, description="Seconds per push; a slow Pushgateway must not hold a finished run."
    )
    pushgateway_job: str = Field(
        "restlake_quality", min_length=1, description="The Pushgateway job label of the pushed group."
    )
