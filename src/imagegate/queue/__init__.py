"""The durable work queue: the ``jobs`` table, claimed with leases and fencing tokens, and the
worker that drains it.

``claims`` holds every claim, renew and release statement with the invariant it keeps;
``transitions`` owns every change a worker makes to a claimed job, each one transaction fenced by
the lease. ``worker`` claims due jobs and hands each to ``runner``, the submit → poll → fetch →
finish step machine, which picks a route with ``router``, passes the per-provider caps, rate
windows and circuit of ``gates`` (counters in the database, or in Redis with ``gates_redis``),
calls the adapter and stores the outputs with ``ingest``. ``backoff`` spaces retries and
``wakeup`` rouses idle workers. The queue calls down into the adapters and ``store``, never up
into ``services``.
"""
