"""``spec.resources``: Kubernetes resources of a source's pods, and its stream job's share of Spark."""

from __future__ import annotations

from pydantic import Field, model_validator

from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import SPARK_MEMORY
from restlake.contracts.values import Quantity


class ResourceQuantities(SpecModel):
    """CPU and memory quantities."""

    cpu: Quantity | None = Field(None, description="CPU, e.g. 500m or 2.")
    memory: Quantity | None = Field(None, description="Memory, e.g. 512Mi or 2Gi.")


class ContainerResources(SpecModel):
    """Requests and limits of one container."""

    requests: ResourceQuantities | None = Field(None, description="Resources the scheduler reserves.")
    limits: ResourceQuantities | None = Field(None, description="Resources the container may not exceed.")


class SparkExecutors(SpecModel):
    """What the source's stream job takes from the standalone Spark cluster.

    Standalone Spark gives an application every free core unless ``spark.cores.max`` caps it, so
    without a cap the first source would hold the whole cluster and the next would never get an
    executor. Absent fields use the operator's defaults (one core, 512m).
    """

    model_config = model_rules(
        {
            "rule": "!has(self.cores) || !has(self.coresPerExecutor) || self.coresPerExecutor <= self.cores",
            "message": "coresPerExecutor must not exceed cores",
        }
    )

    cores: int | None = Field(
        None, ge=1, le=1024, description="Cores the job may hold across the cluster (spark.cores.max)."
    )
    cores_per_executor: int | None = Field(
        None, ge=1, le=64, description="Cores of each executor (spark.executor.cores); at most cores."
    )
    memory: str | None = Field(
        None,
        pattern=SPARK_MEMORY,
        description="Heap of each executor in Spark notation, e.g. 512m or 2g (spark.executor.memory).",
    )

    @model_validator(mode="after")
    def _fits(self) -> SparkExecutors:
        if self.cores and self.cores_per_executor and self.cores_per_executor > self.cores:
            raise field_error(
                "coresPerExecutor",
                f"{self.cores_per_executor} cores per executor exceed the job's {self.cores} cores",
            )
        return self


class Resources(SpecModel):
    """Kubernetes resources of the pods the operator creates, and the job's share of Spark."""

    fetcher: ContainerResources | None = Field(None, description="The fetcher container.")
    driver: ContainerResources | None = Field(None, description="The Spark driver container.")
    executors: SparkExecutors | None = Field(
        None, description="Cores and memory of the stream job's executors on the standalone cluster."
    )
