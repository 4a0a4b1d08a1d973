# MinIO stands in for S3: the lake root is s3a://<lake_bucket>/lake.
resource "kubernetes_namespace" "minio" {
  metadata {
    name = "minio"
  }
}

resource "helm_release" "minio" {
  name       = "minio"
  namespace  = kubernetes_namespace.minio.metadata[0].name
  repository = var.chart_repositories.minio
  chart      = "minio"
  version    = var.chart_versions.minio
  wait       = true

  values = [yamlencode({
    mode           = "standalone"
    replicas       = 1
    persistence    = { enabled = true, size = "10Gi" }
    resources      = { requests = { memory = "512Mi" } }
    buckets        = [{ name = var.lake_bucket, policy = "none", purge = false }]
    consoleIngress = { enabled = false }
  })]

  set_sensitive {
    name  = "rootUser"
    value = var.minio_root_user
  }

  set_sensitive {
    name  = "rootPassword"
    value = var.minio_root_password
  }
}

# Loaded with envFrom into every fetcher and driver (the chart's config.lakeSecret). restlake's
# S3Settings reads the AWS SDK's own names (a Secret any S3 tool can use); path-style access has
# no AWS name, so it is restlake's own: MinIO behind a Service has no wildcard DNS for
# virtual-host style buckets.
resource "kubernetes_secret" "lake" {
  metadata {
    name      = "restlake-lake"
    namespace = kubernetes_namespace.restlake.metadata[0].name
  }

  data = {
    AWS_ACCESS_KEY_ID             = var.minio_root_user
    AWS_SECRET_ACCESS_KEY         = var.minio_root_password
    AWS_ENDPOINT_URL              = "http://minio.${kubernetes_namespace.minio.metadata[0].name}.svc:9000"
    AWS_REGION                    = "us-east-1"
    RESTLAKE_S3_PATH_STYLE_ACCESS = "true"
  }
}
