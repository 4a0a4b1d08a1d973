# Strimzi's cluster operator lives in its own namespace and watches the restlake namespace,
# where the Kafka cluster and the KafkaTopics the restlake operator creates live: Strimzi's
# topic operator only reconciles topics in its Kafka cluster's namespace.
resource "kubernetes_namespace" "strimzi" {
  metadata {
    name = "strimzi"
  }
}

resource "helm_release" "strimzi" {
  name       = "strimzi"
  namespace  = kubernetes_namespace.strimzi.metadata[0].name
  repository = var.chart_repositories.strimzi
  chart      = "strimzi-kafka-operator"
  version    = var.chart_versions.strimzi
  wait       = true

  values = [yamlencode({
    watchNamespaces = [kubernetes_namespace.restlake.metadata[0].name]
    resources = {
      requests = { cpu = "100m", memory = "384Mi" }
      limits   = { memory = "512Mi" }
    }
  })]
}

# kubernetes_manifest needs the Strimzi CRDs at plan time, so a first `apply` targets the
# operators (see `make kind-up`) and a second creates these.
#
# Both are written in the `kafka.strimzi.io/v1` API: Strimzi 1.x serves nothing else, and the
# restlake operator writes its KafkaTopics in the newest API the cluster serves (v1 here). In v1
# KRaft and node pools are the only mode, so the Kafka has no `strimzi.io/node-pools` or
# `strimzi.io/kraft` annotation (ignored since 0.48) and no replicas, storage or resources of
# its own: the node pool carries them.
resource "kubernetes_manifest" "kafka_node_pool" {
  manifest = {
    apiVersion = "kafka.strimzi.io/v1"
    kind       = "KafkaNodePool"
    metadata = {
      name      = "dual-role"
      namespace = kubernetes_namespace.restlake.metadata[0].name
      labels    = { "strimzi.io/cluster" = "restlake-kafka" }
    }
    spec = {
      # One node that is both KRaft controller and broker: enough for a laptop; topics use
      # replication factor 1 (the chart's config.kafka.topicReplicas).
      replicas = 1
      roles    = ["controller", "broker"]
      storage = {
        type = "jbod"
        volumes = [{
          id            = 0
          type          = "persistent-claim"
          size          = "5Gi"
          deleteClaim   = true
          kraftMetadata = "shared"
        }]
      }
      resources = {
        requests = { cpu = "250m", memory = "1Gi" }
        limits   = { memory = "1536Mi" }
      }
    }
  }

  depends_on = [helm_release.strimzi]
}

resource "kubernetes_manifest" "kafka" {
  manifest = {
    apiVersion = "kafka.strimzi.io/v1"
    kind       = "Kafka"
    metadata = {
      name      = "restlake-kafka"
      namespace = kubernetes_namespace.restlake.metadata[0].name
    }
    spec = {
      kafka = {
        # The KRaft metadata version follows from it (spec.kafka.metadataVersion unset).
        version = var.kafka_version
        listeners = [{
          name = "plain"
          port = 9092
          type = "internal"
          tls  = false
        }]
        config = {
          # A single broker: every internal topic must accept replication factor 1.
          "offsets.topic.replication.factor"         = 1
          "transaction.state.log.replication.factor" = 1
          "transaction.state.log.min.isr"            = 1
          "default.replication.factor"               = 1
          "min.insync.replicas"                      = 1
        }
      }
      # The topic operator turns the restlake operator's KafkaTopics into topics.
      entityOperator = {
        topicOperator = {}
      }
    }
  }

  wait {
    condition {
      type   = "Ready"
      status = "True"
    }
  }

  timeouts {
    create = "15m"
  }

  depends_on = [kubernetes_manifest.kafka_node_pool]
}
