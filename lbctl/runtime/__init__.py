"""Asyncio machinery that knows nothing of Services or Kubernetes.

- ``clock``: the time source everything here takes (``RealClock``; ``FakeClock`` for tests,
  so a 300 s backoff takes 0 s of real time).
- ``workqueue``: client-go's rate-limited work queue (dedup, one worker per key, delayed
  and backed-off adds).
- ``controller``: the worker loop; the one place that turns a reconcile outcome into
  queue operations (controller-runtime's ``reconcileHandler``).
- ``manager``: runs Runnables in a fixed start/stop order, some only while leading.
- ``leaderelection``: client-go's lease-based leader election over a ``LeaseStore``.

Nothing in this package imports a Kubernetes client, an HTTP library or the API server.
"""
