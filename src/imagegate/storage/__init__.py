"""Where images live: the ``ObjectStore`` port and its backends (local directory, S3-compatible)."""
