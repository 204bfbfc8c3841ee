"""The layer-2 speaker: answers ARP/NDP for the load-balancer IPs this node owns."""

__all__: list[str] = []
