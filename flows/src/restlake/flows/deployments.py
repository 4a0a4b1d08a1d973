"""The deployments of each source's flows, scheduled from its spec.

Per source: ``restlake-maintenance/<source>`` on ``spec.maintenance.schedule``,
``restlake-quality/<source>`` on ``spec.quality.bronze.schedule``, and ``restlake-backfill/<source>``
with no schedule (run on demand with the range as parameters), and for a source whose
``spec.sinks.snowflake`` is enabled ``restlake-snowflake-sync/<source>`` on its ``schedule``. A
source without a schedule still gets its deployments, to be run from the UI or ``prefect
deployment run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restlake.contracts.spec import IngestionSource, load_sources


@dataclass(frozen=True)
class DeploymentPlan:
    """One deployment to register: which flow, its name, its fixed parameters and cron (None: on demand)."""

    flow: str
    name: str
    parameters: dict[str, Any]
    cron: str | None

    @property
    def full_name(self) -> str:
        return f"restlake-{self.flow}/{self.name}"


def plans_for(file: Path, source: IngestionSource) -> list[DeploymentPlan]:
    params = {"file": str(file.resolve()), "source": source.name}
    maintenance = source.spec.maintenance
    quality = source.spec.quality
    quality_cron = (
        quality.bronze.schedule if quality is not None and source.spec.sinks.bronze.enabled else None
    )
    plans = [
        DeploymentPlan("maintenance", source.name, params, maintenance.schedule if maintenance else None),
        DeploymentPlan("quality", source.name, params, quality_cron),
        DeploymentPlan("backfill", source.name, params, None),
    ]
    snowflake = source.spec.sinks.snowflake
    if snowflake.enabled:
        plans.append(DeploymentPlan("snowflake-sync", source.name, params, snowflake.schedule))
    return plans


def plans_from_files(files: list[Path]) -> list[DeploymentPlan]:
    return [plan for file in files for source in load_sources(file) for plan in plans_for(file, source)]


def runner_deployments(plans: list[DeploymentPlan], **extra: Any) -> list[Any]:
    """Prefect ``RunnerDeployment``s for ``plans`` (``extra``: work pool and the like, for deploy)."""
    from prefect import Flow
    from prefect.deployments.runner import EntrypointType

    from restlake.flows.backfill import backfill_flow
    from restlake.flows.maintenance import maintenance_flow
    from restlake.flows.quality import quality_flow
    from restlake.flows.snowflake import snowflake_sync_flow

    flows: dict[str, Flow[..., Any]] = {
        "maintenance": maintenance_flow,
        "quality": quality_flow,
        "backfill": backfill_flow,
        "snowflake-sync": snowflake_sync_flow,
    }
    return [
        flows[plan.flow].to_deployment(
            name=plan.name,
            cron=plan.cron,
            parameters=plan.parameters,
            tags=["restlake", f"source:{plan.name}"],
            entrypoint_type=EntrypointType.MODULE_PATH,
            **extra,
        )
        for plan in plans
    ]
