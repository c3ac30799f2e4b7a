"""Persistence: the SQL schema, the engine factory, and every SQL statement outside the queue."""
