"""The durable work queue: the ``jobs`` table, claimed with leases and fencing tokens."""
