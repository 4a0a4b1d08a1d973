"""Where the bronze checkpoint keeps one source's state: watermark, GX results, Data Docs, last run.

Layout under ``<quality dir>/<source>/``::

    watermark.json       ingested_at of the newest row the last completed run validated
    last_run.json        the summary of the last run (what ``restlake quality run`` printed)
    metrics.prom         the run's metrics in the text format (a node-exporter textfile, too)
    gx/                  the GX file context: suite, checkpoint, validation results (JSON) under
                         gx/uncommitted/validations/, Data Docs under gx/uncommitted/data_docs/
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from restlake.errors import ConfigError
from restlake.quality.settings import QualitySettings


@dataclass(frozen=True)
class QualityPaths:
    """The files of one source's bronze checkpoint."""

    root: Path

    @classmethod
    def for_source(cls, settings: QualitySettings, lake_root: str, source: str) -> QualityPaths:
        if settings.dir:
            base = Path(settings.dir)
        elif "://" not in lake_root or lake_root.startswith("file://"):
            base = Path(lake_root.removeprefix("file://")) / "_quality"
        else:
            raise ConfigError(
                f"the lake root {lake_root.split('://', 1)[0]}://… is not a local path and GX keeps its "
                "results in files: set RESTLAKE_QUALITY_DIR to a local (mounted) folder"
            )
        return cls(base.absolute() / source)

    @property
    def gx_project(self) -> Path:
        """The folder GX's file context lives in (it creates ``gx/`` inside)."""
        return self.root

    @property
    def watermark(self) -> Path:
        return self.root / "watermark.json"

    @property
    def last_run(self) -> Path:
        return self.root / "last_run.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.prom"

    @property
    def data_docs_index(self) -> Path:
        return self.root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def read_watermark(paths: QualityPaths) -> datetime | None:
    """``ingested_at`` of the newest row the last completed run validated, or None before any run."""
    try:
        data = json.loads(paths.watermark.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"unreadable quality watermark {paths.watermark}: {exc}; delete it or use --full"
        ) from None
    value = data.get("ingested_at") if isinstance(data, dict) else None
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"quality watermark {paths.watermark} holds {value!r}, not an ISO time; delete it or use --full"
        ) from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a run killed mid-write leaves the previous file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def write_watermark(paths: QualityPaths, ingested_at: datetime, run_id: str) -> None:
    write_json(paths.watermark, {"ingested_at": ingested_at.isoformat(), "run_id": run_id})
