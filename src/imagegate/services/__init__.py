"""Use-cases behind the API and the CLI: submitting jobs and actions, reading and cancelling
jobs, uploads, accounts and keys, the webhook log, retention and first-start bootstrap.

Every transaction an API request or an operator command opens is opened here. The transitions a
worker makes to a claimed job are the queue's (``imagegate.queue.transitions``), next to the
claims that fence them; services call into the queue, never the reverse.
"""
