# Optional (external_secrets_enabled): sources' secretRefs served from Vault/OpenBao, as in a
# cluster where nobody runs `kubectl create secret`. OpenBao holds the values, External Secrets
# Operator (ESO) copies them into the Secrets restlake's pods read. OpenBao runs in dev mode (in
# memory, unsealed at start, one root token): enough to show the path on kind, never for anything
# shared; a real cluster points the ClusterSecretStore at its own OpenBao or Vault instead.
resource "kubernetes_namespace" "openbao" {
  count = var.external_secrets_enabled ? 1 : 0

  metadata {
    name = "openbao"
  }
}

# Seed values for OpenBao, read by its pod's postStart hook: from a Secret rather than the chart
# values, so they stay out of the StatefulSet spec.
resource "kubernetes_secret" "openbao_seed" {
  count = var.external_secrets_enabled ? 1 : 0

  metadata {
    name      = "openbao-seed"
    namespace = kubernetes_namespace.openbao[0].metadata[0].name
  }

  data = {
    github-token = var.github_token
  }
}

resource "helm_release" "openbao" {
  count = var.external_secrets_enabled ? 1 : 0

  name       = "openbao"
  namespace  = kubernetes_namespace.openbao[0].metadata[0].name
  repository = var.chart_repositories.openbao
  chart      = "openbao"
  version    = var.chart_versions.openbao
  wait       = true

  values = [yamlencode({
    # ESO delivers the secrets; no agent is injected into pods.
    injector = { enabled = false }
    server = {
      dev = { enabled = true }
      resources = {
        requests = { cpu = "50m", memory = "128Mi" }
        limits   = { memory = "256Mi" }
      }
      extraSecretEnvironmentVars = [{
        envName    = "SEED_GITHUB_TOKEN"
        secretName = kubernetes_secret.openbao_seed[0].metadata[0].name
        secretKey  = "github-token"
      }]
      # Dev mode keeps everything in memory, so every start of the pod begins empty: the seed is
      # written on each start, once the server answers (dev mode mounts KV v2 at secret/). An
      # empty github_token writes nothing; `bao kv put` it by hand (README).
      postStart = [
        "/bin/sh",
        "-c",
        <<-EOT
        i=0
        until bao status >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 120 ] || exit 1; sleep 1; done
        [ -z "$SEED_GITHUB_TOKEN" ] || BAO_TOKEN="$VAULT_DEV_ROOT_TOKEN_ID" bao kv put -mount=secret restlake/github-token token="$SEED_GITHUB_TOKEN"
        EOT
      ]
    }
  })]

  set_sensitive {
    name  = "server.dev.devRootToken"
    value = var.openbao_root_token
  }
}

resource "kubernetes_namespace" "external_secrets" {
  count = var.external_secrets_enabled ? 1 : 0

  metadata {
    name = "external-secrets"
  }
}

# Its CRDs are chart templates (installCRDs), so kubernetes_manifest finds them only after this
# release exists: like the Strimzi and CloudNativePG operators, it is applied in the operators'
# step before the full apply (README, `make kind-up`).
resource "helm_release" "external_secrets" {
  count = var.external_secrets_enabled ? 1 : 0

  name       = "external-secrets"
  namespace  = kubernetes_namespace.external_secrets[0].metadata[0].name
  repository = var.chart_repositories.external_secrets
  chart      = "external-secrets"
  version    = var.chart_versions.external_secrets
  wait       = true

  values = [yamlencode({
    installCRDs = true
    resources = {
      requests = { cpu = "50m", memory = "64Mi" }
      limits   = { memory = "256Mi" }
    }
  })]
}

# Token auth with the dev root token: the simplest auth OpenBao has. A real OpenBao gives ESO a
# read-only policy through its kubernetes auth method instead.
resource "kubernetes_secret" "openbao_token" {
  count = var.external_secrets_enabled ? 1 : 0

  metadata {
    name      = "openbao-token"
    namespace = kubernetes_namespace.external_secrets[0].metadata[0].name
  }

  data = {
    token = var.openbao_root_token
  }
}

resource "kubernetes_manifest" "openbao_store" {
  count = var.external_secrets_enabled ? 1 : 0

  manifest = {
    apiVersion = "external-secrets.io/v1"
    kind       = "ClusterSecretStore"
    metadata = {
      name = "openbao"
    }
    spec = {
      # The token reads everything in OpenBao: only ExternalSecrets in restlake's namespace may
      # use this store.
      conditions = [{ namespaces = [kubernetes_namespace.restlake.metadata[0].name] }]
      provider = {
        vault = {
          server  = "http://${helm_release.openbao[0].name}.${kubernetes_namespace.openbao[0].metadata[0].name}.svc:8200"
          path    = "secret"
          version = "v2"
          auth = {
            tokenSecretRef = {
              name      = kubernetes_secret.openbao_token[0].metadata[0].name
              namespace = kubernetes_secret.openbao_token[0].metadata[0].namespace
              key       = "token"
            }
          }
        }
      }
    }
  }

  # Ready once ESO has reached OpenBao with the token.
  wait {
    condition {
      type   = "Ready"
      status = "True"
    }
  }

  depends_on = [helm_release.external_secrets, helm_release.openbao]
}

# The Secret examples/github-issues.yaml and github-events.yaml reference (`github-token`, key
# `token`), from OpenBao's secret/restlake/github-token. Not waited for: with an empty
# github_token it becomes Ready only once the token is written into OpenBao.
resource "kubernetes_manifest" "github_token" {
  count = var.external_secrets_enabled ? 1 : 0

  manifest = {
    apiVersion = "external-secrets.io/v1"
    kind       = "ExternalSecret"
    metadata = {
      name      = "github-token"
      namespace = kubernetes_namespace.restlake.metadata[0].name
    }
    spec = {
      # How soon a token rotated in OpenBao reaches the Secret.
      refreshInterval = "1m"
      secretStoreRef = {
        kind = "ClusterSecretStore"
        name = kubernetes_manifest.openbao_store[0].manifest.metadata.name
      }
      target = {
        name           = "github-token"
        creationPolicy = "Owner"
        # The operator lets a source read only Secrets carrying this label.
        template = {
          metadata = {
            labels = { "restlake.io/source-credentials" = "true" }
          }
        }
      }
      data = [{
        secretKey = "token"
        remoteRef = {
          key      = "restlake/github-token"
          property = "token"
        }
      }]
    }
  }
}
