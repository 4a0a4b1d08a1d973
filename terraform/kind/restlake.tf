# The chart from this repository, configured for the services above.
resource "helm_release" "restlake" {
  name      = "restlake"
  namespace = kubernetes_namespace.restlake.metadata[0].name
  chart     = "${path.module}/../../charts/restlake"
  wait      = true
  timeout   = 600

  values = [yamlencode({
    operator = { image = { tag = var.restlake_image_tag } }
    fetcher  = { image = { tag = var.restlake_image_tag } }
    spark = {
      image  = { tag = var.restlake_image_tag }
      worker = { replicas = 1 }
    }
    config = {
      kafka = {
        bootstrap     = "restlake-kafka-kafka-bootstrap:9092"
        cluster       = "restlake-kafka"
        topicReplicas = 1
      }
      lakeRoot   = "s3a://${var.lake_bucket}/lake"
      lakeSecret = kubernetes_secret.lake.metadata[0].name
      # Written by CloudNativePG for the restlake-pg Cluster (postgres.tf).
      postgresSecret = { name = "restlake-pg-app", key = "uri" }
    }
  })]

  depends_on = [
    kubernetes_manifest.kafka,
    kubernetes_manifest.postgres,
    helm_release.minio,
    helm_release.kube_prometheus_stack,
  ]
}
