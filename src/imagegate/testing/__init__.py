"""Fakes for tests and demos: a fake clock and fake upstream vendor servers.

Nothing in the production path imports this package.
"""
