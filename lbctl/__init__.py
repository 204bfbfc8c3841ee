"""lbctl: a Kubernetes controller for LoadBalancer and NodePort Services."""

__all__ = ["__version__"]

__version__ = "0.1.0"
