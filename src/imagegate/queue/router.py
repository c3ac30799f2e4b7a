"""Which upstream serves a job.

Test-key jobs always run on the built-in sandbox. Live jobs take the catalog entry's routes in
order and use the first whose provider is configured; ``route_index`` on the job moves on to the
next configured route when a retryable failure exhausts one (see ``queue.runner``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imagegate.catalog import Catalog, ModelSpec
from imagegate.errors import UpstreamMisconfigured
from imagegate.providers.pool import SANDBOX, ProviderPool
from imagegate.providers.port import Route
from imagegate.store.jobs import JobRow

__all__ = ["Router"]


def _parse_route(text: str) -> Route:
    provider, sep, upstream = text.partition(":")
    if not sep or not provider or not upstream:
        raise ValueError(f"a route is written provider:upstream-model, not {text!r}")
    return Route(provider, upstream)


class Router:
    def __init__(
        self,
        catalog: Catalog,
        pool: ProviderPool,
        overrides: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._pool = pool
        self._overrides = {
            model: tuple(_parse_route(text) for text in routes)
            for model, routes in (overrides or {}).items()
        }

    def routes(self, spec: ModelSpec) -> list[Route]:
        """The configured routes for a model, in preference order."""
        candidates = self._overrides.get(spec.id, spec.routes)
        return [route for route in candidates if self._pool.configured(route.provider)]

    def available(self, spec: ModelSpec) -> bool:
        return bool(self.routes(spec))

    def route_for(self, job: JobRow) -> Route:
        if job.sandbox:
            return Route(SANDBOX, job.model)
        if job.provider and job.upstream_model and job.provider_task_id:
            return Route(job.provider, job.upstream_model)  # resume the task we already have
        spec = self._catalog.get(job.model)
        routes = self.routes(spec) if spec else []
        if not routes:
            raise UpstreamMisconfigured(f"No upstream provider is configured for {job.model}")
        return routes[min(job.route_index, len(routes) - 1)]
