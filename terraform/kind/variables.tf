variable "cluster_name" {
  description = "Name of the kind cluster (also the kubeconfig context, kind-<name>)."
  type        = string
  default     = "restlake"
}

variable "node_image" {
  description = "kindest/node image of every node; it fixes the Kubernetes version of the cluster."
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
    strimzi     = string
    cloudnative = string
    minio       = string
    prometheus  = string
  })
  default = {
    strimzi     = "https://strimzi.io/charts/"
    cloudnative = "https://cloudnative-pg.github.io/charts"
    minio       = "https://charts.min.io/"
    prometheus  = "https://prometheus-community.github.io/helm-charts"
  }
}

variable "chart_versions" {
  description = "Pinned versions of the third-party charts: Strimzi's operator, CloudNativePG's operator, MinIO and kube-prometheus-stack."
  type = object({
    strimzi               = string
    cloudnative_pg        = string
    minio                 = string
    kube_prometheus_stack = string
  })
  default = {
    strimzi               = "0.47.0"
    cloudnative_pg        = "0.22.1"
    minio                 = "5.3.0"
    kube_prometheus_stack = "65.1.1"
  }
}

variable "kafka_version" {
  description = "Kafka version of the Strimzi cluster; must be one the Strimzi operator version supports (KRaft only)."
  type        = string
  default     = "4.0.0"
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
