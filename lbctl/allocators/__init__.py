"""Pure allocators: ClusterIPs, NodePorts and LoadBalancer IP pools.

Nothing here does I/O, takes a lock or starts a task: state in, state out, so the
embedded API server can commit a Service's allocations in the same transaction as
the Service, and tests can drive every sequence of steps.
"""
