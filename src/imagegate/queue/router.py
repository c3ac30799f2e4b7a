"""Which upstream serves a job, and where it goes when that upstream is in trouble.

Test-key jobs always run on the built-in sandbox. Live jobs take the catalog entry's routes in
order (or the operator's ``routes`` override), keeping those whose provider is configured, then
the entry's substitutes when the model was retired upstream and ``allow_substitutes`` is on.

A job starts at its ``route_index`` and takes the first route from there whose provider is
usable (circuit closed, no long 429 cool-down; see ``queue.gates``). A retryable failure before
the vendor accepted the task moves ``route_index`` past the failed route (``next_index``), so
the job fails over. A route whose input table refuses the job's params (a value its vendor has
no counterpart for, more images than it makes) is passed over. Once a task id is stored the job
stays with that provider, and a follow-up action (Midjourney upsample, …) runs where its parent
ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imagegate.catalog import Catalog, ModelSpec
from imagegate.errors import UpstreamMisconfigured, UpstreamRateLimited
from imagegate.providers.pool import SANDBOX, ProviderPool
from imagegate.queue.gates import DEFAULT_COOLDOWN_SECONDS, ProviderGates
from imagegate.store.jobs import JobRow
from imagegate.types import Route

__all__ = ["Choice", "Router", "parse_route"]


def parse_route(text: str) -> Route:
    provider, sep, upstream = text.partition(":")
    if not sep or not provider or not upstream:
        raise ValueError(f"a route is written provider:upstream-model, not {text!r}")
    return Route(provider, upstream)


@dataclass(frozen=True)
class Choice:
    route: Route
    index: int
    """The route's position in ``Router.routes``; the job's ``route_index`` once it runs."""


class Router:
    def __init__(
        self,
        catalog: Catalog,
        pool: ProviderPool,
        gates: ProviderGates,
        overrides: Mapping[str, Sequence[str]] | None = None,
        *,
        allow_substitutes: bool = True,
        failover_after_seconds: float = 20.0,
    ) -> None:
        self._catalog = catalog
        self._pool = pool
        self._gates = gates
        self._allow_substitutes = allow_substitutes
        self._failover_after = failover_after_seconds
        self._overrides = {
            model: tuple(parse_route(text) for text in routes)
            for model, routes in (overrides or {}).items()
        }

    def routes(self, spec: ModelSpec) -> list[Route]:
        """The configured routes for a model, in preference order, substitutes last."""
        candidates = [spec.resolve(route) for route in self._overrides.get(spec.id, spec.routes)]
        if self._allow_substitutes:
            candidates += [route for route in spec.substitutes if route not in candidates]
        return [route for route in candidates if self._pool.configured(route.provider)]

    def available(self, spec: ModelSpec) -> bool:
        return bool(self.routes(spec))

    def unavailable_reason(self, spec: ModelSpec) -> str:
        if spec.retired_upstream and spec.substitutes and not self._allow_substitutes:
            return (
                f"{spec.id} was retired upstream on {spec.retired_upstream}, no configured "
                "provider still serves it, and substitutes are disabled"
            )
        return f"{spec.id} is not available: no upstream provider is configured for it"

    async def choose(self, job: JobRow) -> Choice:
        if job.sandbox:
            return Choice(Route(SANDBOX, job.model), 0)
        if job.provider and job.upstream_model and job.provider_task_id:
            # Resume the task we already have.
            return Choice(Route(job.provider, job.upstream_model), job.route_index)
        if job.action:
            return Choice(Route(job.action["provider"], job.action["upstream_model"]), 0)
        routes = self._routes_for(job)
        start = min(job.route_index, len(routes) - 1)
        for index in range(start, len(routes)):
            if await self._gates.usable(routes[index].provider):
                return Choice(routes[index], index)
        return Choice(routes[start], start)  # every route is in trouble: wait at the gate

    def wait_is_long(self, error: UpstreamRateLimited) -> bool:
        """True when a 429's advised wait is worth failing over for."""
        return (error.retry_after or DEFAULT_COOLDOWN_SECONDS) > self._failover_after

    async def next_index(self, job: JobRow, failed: int) -> int | None:
        """A later usable route to fail over to after route ``failed`` failed, if any."""
        if job.sandbox or job.action:
            return None
        routes = self._routes_for(job)
        for index in range(failed + 1, len(routes)):
            if await self._gates.usable(routes[index].provider):
                return index
        return None

    def _routes_for(self, job: JobRow) -> list[Route]:
        """The configured routes that can send this job's params (``RouteInputs.refusals``); the
        list is the same on every call for one job, so ``route_index`` keeps its meaning."""
        spec = self._catalog.get(job.model)
        configured = self.routes(spec) if spec else []
        if not configured:
            raise UpstreamMisconfigured(f"No upstream provider is configured for {job.model}")
        routes = [
            route
            for route in configured
            if route.inputs is None or not route.inputs.refusals(job.params, job.outputs_expected)
        ]
        if not routes:
            raise UpstreamMisconfigured(
                f"No configured route of {job.model} can take this job's params "
                f"({', '.join(str(route) for route in configured)})"
            )
        return routes
