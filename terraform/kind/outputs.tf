output "cluster_name" {
  description = "Name of the kind cluster."
  value       = kind_cluster.this.name
}

output "kubeconfig_path" {
  description = "Kubeconfig file kind wrote for the cluster (KUBECONFIG=<this> kubectl ...)."
  value       = kind_cluster.this.kubeconfig_path
}

output "kubeconfig" {
  description = "Kubeconfig of the cluster, for tools that take it as text."
  value       = kind_cluster.this.kubeconfig
  sensitive   = true
}

output "endpoint" {
  description = "API server URL of the cluster."
  value       = kind_cluster.this.endpoint
}

output "namespace" {
  description = "Namespace of restlake, its Kafka cluster and its Postgres."
  value       = kubernetes_namespace.restlake.metadata[0].name
}

output "kafka_bootstrap" {
  description = "Kafka bootstrap address inside the cluster (the one the chart derives from config.kafka.cluster)."
  value       = "${kubernetes_manifest.kafka.manifest.metadata.name}-kafka-bootstrap.${kubernetes_namespace.restlake.metadata[0].name}.svc:9092"
}

output "postgres_secret" {
  description = "Secret (in the restlake namespace) whose `uri` key is the Postgres URI of the sink."
  value       = "restlake-pg-app"
}

output "lake_root" {
  description = "Lake root URI the stream jobs write to."
  value       = "s3a://${var.lake_bucket}/lake"
}

output "minio_endpoint" {
  description = "MinIO S3 endpoint inside the cluster."
  value       = "http://minio.${kubernetes_namespace.minio.metadata[0].name}.svc:9000"
}

output "marquez_url" {
  description = "Marquez API inside the cluster (OpenLineage endpoint)."
  value       = local.marquez_url
}

output "grafana_service" {
  description = "Grafana Service (namespace/name) when monitoring is enabled; port-forward it to port 80."
  value       = var.monitoring_enabled ? "${kubernetes_namespace.monitoring[0].metadata[0].name}/kps-grafana" : null
}

output "secret_store" {
  description = "ClusterSecretStore on OpenBao when external_secrets_enabled (ExternalSecrets in the restlake namespace may use it), else null."
  value       = one(kubernetes_manifest.openbao_store[*].manifest.metadata.name)
}

output "prefect_api_url" {
  description = "In-cluster Prefect API URL (null unless prefect_enabled); from outside, port-forward svc/prefect-server 4200 in namespace prefect."
  value       = var.prefect_enabled ? local.prefect_api_url : null
}
