"""The Kubernetes adapter of kar98k: a kopf operator that runs LoadTest resources."""
