# Prefect 3 server and a worker polling a Kubernetes work pool, for the restlake flows that
# `restlake flows deploy` registers there. Optional (prefect_enabled): the operator's quality
# CronJob and Backfill resource do the same work without them.
resource "kubernetes_namespace" "prefect" {
  count = var.prefect_enabled ? 1 : 0

  metadata {
    name = "prefect"
  }
}

resource "helm_release" "prefect_server" {
  count = var.prefect_enabled ? 1 : 0

  name       = "prefect-server"
  namespace  = kubernetes_namespace.prefect[0].metadata[0].name
  repository = var.chart_repositories.prefect
  chart      = "prefect-server"
  version    = var.chart_versions.prefect
  wait       = true
  timeout    = 600

  values = [yamlencode({
    server = {
      # The UI calls the API from the browser: through `kubectl port-forward svc/prefect-server 4200`.
      uiConfig = { prefectUiApiUrl = "http://localhost:4200/api" }
    }
  })]
}

resource "helm_release" "prefect_worker" {
  count = var.prefect_enabled ? 1 : 0

  name       = "prefect-worker"
  namespace  = kubernetes_namespace.prefect[0].metadata[0].name
  repository = var.chart_repositories.prefect
  chart      = "prefect-worker"
  version    = var.chart_versions.prefect
  wait       = true
  timeout    = 600

  values = [yamlencode({
    worker = {
      apiConfig                 = "selfHostedServer"
      selfHostedServerApiConfig = { apiUrl = local.prefect_api_url }
      # The worker creates the pool (type kubernetes) when it is missing; each flow run is a Job.
      config = { workPool = var.prefect_work_pool, type = "kubernetes" }
    }
  })]

  depends_on = [helm_release.prefect_server]
}

locals {
  # In-cluster API URL of the server: what the worker, its flow-run Jobs and `restlake flows deploy`
  # (through a port-forward) use.
  prefect_api_url = "http://prefect-server.prefect.svc.cluster.local:4200/api"
}
