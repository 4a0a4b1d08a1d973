# Marquez (OpenLineage backend). Upstream keeps its Helm chart in its source tree and
# publishes no chart repository, so it is two plain objects here, with its own
# CloudNativePG database.
resource "kubernetes_namespace" "marquez" {
  metadata {
    name = "marquez"
  }
}

resource "kubernetes_manifest" "marquez_db" {
  manifest = {
    apiVersion = "postgresql.cnpg.io/v1"
    kind       = "Cluster"
    metadata = {
      name      = "marquez-db"
      namespace = kubernetes_namespace.marquez.metadata[0].name
    }
    spec = {
      instances = 1
      storage   = { size = "1Gi" }
      bootstrap = {
        initdb = { database = "marquez", owner = "marquez" }
      }
    }
  }

  wait {
    condition {
      type   = "Ready"
      status = "True"
    }
  }

  depends_on = [helm_release.cloudnative_pg]
}

resource "kubernetes_deployment" "marquez" {
  metadata {
    name      = "marquez"
    namespace = kubernetes_namespace.marquez.metadata[0].name
    labels    = { "app.kubernetes.io/name" = "marquez" }
  }

  spec {
    replicas = 1

    selector {
      match_labels = { "app.kubernetes.io/name" = "marquez" }
    }

    template {
      metadata {
        labels = { "app.kubernetes.io/name" = "marquez" }
      }

      spec {
        container {
          name  = "marquez"
          image = var.marquez_image

          env {
            name  = "MARQUEZ_PORT"
            value = "5000"
          }
          env {
            name  = "MARQUEZ_ADMIN_PORT"
            value = "5001"
          }
          env {
            name  = "POSTGRES_HOST"
            value = "marquez-db-rw"
          }
          env {
            name  = "POSTGRES_PORT"
            value = "5432"
          }
          env {
            name  = "POSTGRES_DB"
            value = "marquez"
          }
          env {
            name = "POSTGRES_USER"
            value_from {
              secret_key_ref {
                name = "marquez-db-app"
                key  = "username"
              }
            }
          }
          env {
            name = "POSTGRES_PASSWORD"
            value_from {
              secret_key_ref {
                name = "marquez-db-app"
                key  = "password"
              }
            }
          }

          port {
            name           = "http"
            container_port = 5000
          }
          port {
            name           = "admin"
            container_port = 5001
          }

          readiness_probe {
            http_get {
              path = "/healthcheck"
              port = "admin"
            }
            period_seconds = 10
          }

          resources {
            requests = { cpu = "100m", memory = "512Mi" }
            limits   = { memory = "1Gi" }
          }
        }
      }
    }
  }

  depends_on = [kubernetes_manifest.marquez_db]
}

resource "kubernetes_service" "marquez" {
  metadata {
    name      = "marquez"
    namespace = kubernetes_namespace.marquez.metadata[0].name
  }

  spec {
    selector = { "app.kubernetes.io/name" = "marquez" }

    port {
      name        = "http"
      port        = 80
      target_port = "http"
    }
  }
}

locals {
  # Base URL of Marquez's OpenLineage endpoint as restlake's pods see it (their lineage client
  # appends api/v1/lineage).
  marquez_url = "http://${kubernetes_service.marquez.metadata[0].name}.${kubernetes_namespace.marquez.metadata[0].name}.svc:${kubernetes_service.marquez.spec[0].port[0].port}"
}
