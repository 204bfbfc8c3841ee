"""Controllers: glue between the Kubernetes edge, the runtime and providers."""
