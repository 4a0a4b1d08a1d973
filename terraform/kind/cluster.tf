resource "kind_cluster" "this" {
  name           = var.cluster_name
  node_image     = var.node_image
  wait_for_ready = true

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    node {
      role = "control-plane"
    }

    dynamic "node" {
      for_each = range(var.worker_nodes)
      content {
        role = "worker"
      }
    }
  }
}

resource "kubernetes_namespace" "restlake" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of" = "restlake"
    }
  }
}
