"""The ``imagegate`` command."""
