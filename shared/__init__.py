"""Ferry: import container images and OCI artifacts into a registry, as `az acr import` does."""
