# Postgres through CloudNativePG: the operator's chart plus one Cluster per database user.
# CloudNativePG writes a `<cluster>-app` Secret whose `uri` key is the libpq URI restlake
# reads, so no password is handled here.
resource "kubernetes_namespace" "cnpg" {
  metadata {
    name = "cnpg-system"
  }
}

resource "helm_release" "cloudnative_pg" {
  name       = "cnpg"
  namespace  = kubernetes_namespace.cnpg.metadata[0].name
  repository = var.chart_repositories.cloudnative
  chart      = "cloudnative-pg"
  version    = var.chart_versions.cloudnative_pg
  wait       = true
}

resource "kubernetes_manifest" "postgres" {
  manifest = {
    apiVersion = "postgresql.cnpg.io/v1"
    kind       = "Cluster"
    metadata = {
      name      = "restlake-pg"
      namespace = kubernetes_namespace.restlake.metadata[0].name
    }
    spec = {
      instances = 1
      storage   = { size = "5Gi" }
      bootstrap = {
        initdb = { database = "restlake", owner = "restlake" }
      }
      resources = {
        requests = { cpu = "100m", memory = "256Mi" }
        limits   = { memory = "512Mi" }
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
    create = "10m"
  }

  depends_on = [helm_release.cloudnative_pg]
}
