variable "cluster_name" {
  description = "Name of the kind cluster (also the kubeconfig context, kind-<name>)."
  type        = string
  default     = "restlake"
}

variable "node_image" {
  description = "kindest/node image of every node; it fixes the Kubernetes version of the cluster (Strimzi 1.x and the OpenBao chart need 1.30 or newer)."
  type        = string
  default     = "kindest/node:v1.33.1"
}

variable "worker_nodes" {
  description = "Worker nodes besides the control plane. One is enough for the demo; more exercise scheduling and anti-affinity."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_nodes >= 0 && var.worker_nodes <= 5
    error_message = "worker_nodes must be between 0 and 5 (each node is a container on this machine)."
  }
}

variable "namespace" {
  description = "Namespace of restlake, its Kafka cluster and its Postgres (one namespace keeps Strimzi's topic operator and the restlake operator on the same KafkaTopics)."
  type        = string
  default     = "restlake"
}

variable "restlake_image_tag" {
  description = "Tag of the restlake/operator, restlake/fetcher and restlake/spark images; `make images` builds them and `make kind-up` loads them into the cluster."
  type        = string
  default     = "0.1.0"
}

variable "chart_repositories" {
  description = "Helm chart repositories of the third-party releases (override to use a mirror)."
  type = object({
    strimzi          = string
    cloudnative      = string
    minio            = string
    prometheus       = string
    openbao          = string
    external_secrets = string
    prefect          = string
  })
  default = {
    strimzi          = "https://strimzi.io/charts/"
    cloudnative      = "https://cloudnative-pg.github.io/charts"
    minio            = "https://charts.min.io/"
    prometheus       = "https://prometheus-community.github.io/helm-charts"
    openbao          = "https://openbao.github.io/openbao-helm"
    external_secrets = "https://charts.external-secrets.io"
    prefect          = "https://prefecthq.github.io/prefect-helm"
  }
}

variable "chart_versions" {
  description = "Pinned versions of the third-party charts: Strimzi's operator, CloudNativePG's operator, MinIO, kube-prometheus-stack, OpenBao and External Secrets Operator (installed only with external_secrets_enabled), and the Prefect server and worker charts (only with prefect_enabled)."
  type = object({
    strimzi               = string
    cloudnative_pg        = string
    minio                 = string
    kube_prometheus_stack = string
    openbao               = string
    external_secrets      = string
    prefect               = string
  })
  default = {
    # Strimzi 1.x serves only the kafka.strimzi.io/v1 API, the one kafka.tf and the restlake
    # operator's KafkaTopics use; it needs Kubernetes 1.30+ (node_image).
    strimzi               = "1.2.0"
    cloudnative_pg        = "0.22.1"
    minio                 = "5.3.0"
    kube_prometheus_stack = "65.1.1"
    openbao               = "0.29.2"
    external_secrets      = "2.9.0"
    # prefect-server and prefect-worker are released together under one version.
    prefect = "2025.7.31204438"
  }
}

variable "kafka_version" {
  description = "Kafka version of the Strimzi cluster; must be one the pinned Strimzi supports (1.2.0: 4.2.0, 4.2.1, 4.3.0, 4.3.1, of which 4.3.1 is its default). KRaft only."
  type        = string
  default     = "4.3.1"
}

variable "marquez_image" {
  description = "Marquez API image (OpenLineage backend)."
  type        = string
  default     = "marquezproject/marquez:0.50.0"
}

variable "minio_root_user" {
  description = "MinIO root user; the lake credentials restlake's pods use. Local kind only."
  type        = string
  default     = "restlake"
}

variable "minio_root_password" {
  description = "MinIO root password (at least 8 characters). Local kind only: override for anything shared."
  type        = string
  default     = "restlake-minio"
  sensitive   = true

  validation {
    condition     = length(var.minio_root_password) >= 8
    error_message = "MinIO refuses root passwords shorter than 8 characters."
  }
}

variable "lake_bucket" {
  description = "MinIO bucket under which the lake (bronze, quarantine, checkpoints) lives."
  type        = string
  default     = "restlake"
}

variable "monitoring_enabled" {
  description = "Install kube-prometheus-stack (Prometheus Operator, Prometheus, Grafana). The operator creates ServiceMonitors only where its CRD exists."
  type        = bool
  default     = true
}

variable "lineage_enabled" {
  description = "Send the OpenLineage events of every fetcher, stream driver and job to the Marquez this module deploys (the chart's config.lineage, transport http). False sets transport none; Marquez is still installed."
  type        = bool
  default     = true
}

variable "external_secrets_enabled" {
  description = "Install OpenBao (dev mode: in memory, unsealed, one root token) and External Secrets Operator, with a ClusterSecretStore on OpenBao and an ExternalSecret that writes the `github-token` Secret from it, so that sources' secretRefs can come from Vault/OpenBao. Needs `-target=helm_release.external_secrets` in the operators' apply step (see README)."
  type        = bool
  default     = false
}

variable "openbao_root_token" {
  description = "Root token of the dev-mode OpenBao, and the token External Secrets Operator reads it with. Local kind only: dev mode is not for anything shared."
  type        = string
  default     = "restlake-dev-root"
  sensitive   = true

  validation {
    condition     = length(var.openbao_root_token) > 0
    error_message = "openbao_root_token must not be empty."
  }
}

variable "github_token" {
  description = "GitHub API token OpenBao is seeded with at secret/restlake/github-token (key token) when external_secrets_enabled; empty seeds nothing, then write it with `bao kv put` (README)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "prefect_enabled" {
  description = "Install a Prefect 3 server and a worker on a Kubernetes work pool (namespace prefect), for the flows `restlake flows deploy` registers. The operator's quality CronJob and Backfill resource need neither."
  type        = bool
  default     = false
}

variable "prefect_work_pool" {
  description = "Name of the Kubernetes work pool the Prefect worker polls and `restlake flows deploy --pool` targets."
  type        = string
  default     = "restlake"
}
