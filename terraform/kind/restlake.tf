# The chart from this repository, configured for the services above.
resource "helm_release" "restlake" {
  name      = "restlake"
  namespace = kubernetes_namespace.restlake.metadata[0].name
  chart     = "${path.module}/../../charts/restlake"
  wait      = true
  timeout   = 600

  values = [yamlencode({
    # This release owns restlake's CRDs and upgrades them with the chart (they are templates, kept
    # on uninstall); it is the only restlake release in this cluster.
    crds     = { install = true }
    operator = { image = { tag = var.restlake_image_tag } }
    fetcher  = { image = { tag = var.restlake_image_tag } }
    spark = {
      image = { tag = var.restlake_image_tag }
      # One worker with two cores, and each source's stream job capped at one core and one 512m
      # executor: two sources get an executor at once within the worker's 1g.
      worker    = { replicas = 1, cores = 2, memory = "1g" }
      executors = { cores = 1, coresPerExecutor = 1, memory = "512m" }
    }
    config = {
      kafka = {
        # No bootstrap: the chart derives <cluster>-kafka-bootstrap.<namespace>.svc:9092, the
        # bootstrap Service Strimzi creates for this Kafka (the kafka_bootstrap output).
        cluster       = kubernetes_manifest.kafka.manifest.metadata.name
        topicReplicas = 1
      }
      lakeRoot   = "s3a://${var.lake_bucket}/lake"
      lakeSecret = kubernetes_secret.lake.metadata[0].name
      # Written by CloudNativePG for the restlake-pg Cluster (postgres.tf).
      postgresSecret = { name = "restlake-pg-app", key = "uri" }
      # OpenLineage events of every fetcher, stream driver and job go to the Marquez of marquez.tf.
      lineage = {
        transport = var.lineage_enabled ? "http" : "none"
        url       = var.lineage_enabled ? local.marquez_url : ""
      }
    }
  })]

  depends_on = [
    kubernetes_manifest.kafka,
    kubernetes_manifest.postgres,
    helm_release.minio,
    helm_release.kube_prometheus_stack,
    # Up before the first events are sent, so the first runs are not lost.
    kubernetes_deployment.marquez,
  ]
}
