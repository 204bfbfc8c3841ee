"""Pure Kubernetes API machinery: resource registry, selectors, patches, Tables,
discovery documents, schemas. No I/O: the embedded API server (``lbctl.apiserver``)
is the edge that serves them."""
