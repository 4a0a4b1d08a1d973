# Prometheus Operator, Prometheus and Grafana. Installed before restlake so the operator
# finds the ServiceMonitor CRD and creates one per source.
resource "kubernetes_namespace" "monitoring" {
  count = var.monitoring_enabled ? 1 : 0

  metadata {
    name = "monitoring"
  }
}

resource "helm_release" "kube_prometheus_stack" {
  count = var.monitoring_enabled ? 1 : 0

  name       = "kps"
  namespace  = kubernetes_namespace.monitoring[0].metadata[0].name
  repository = var.chart_repositories.prometheus
  chart      = "kube-prometheus-stack"
  version    = var.chart_versions.kube_prometheus_stack
  wait       = true
  timeout    = 900

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # Pick up ServiceMonitors from every namespace, not only the ones labelled with this release.
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        ruleSelectorNilUsesHelmValues           = false
        retention                               = "2d"
      }
    }
    alertmanager = { enabled = false }
    # kind's control-plane components listen on loopback only; scraping them only adds noise.
    kubeControllerManager = { enabled = false }
    kubeScheduler         = { enabled = false }
    kubeEtcd              = { enabled = false }
    kubeProxy             = { enabled = false }
  })]
}
