# Pinned exactly: a kind environment is rebuilt often, and a provider minor release that
# changes a default (as helm 3.x did for the `kubernetes` block) must be an explicit upgrade.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    kind = {
      source  = "tehcyx/kind"
      version = "0.9.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "2.17.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "2.38.0"
    }
  }
}
