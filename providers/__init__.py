"""Load-balancer providers for lbctl."""
