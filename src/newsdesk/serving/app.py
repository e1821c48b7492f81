"""The app factory of the serving API.

    create_app(settings, *, recommender_factory=None, store_factory=None,
               event_log_factory=None, variant_assigner=None) -> FastAPI

The lifespan opens every resource in order — online store (behind a circuit breaker), event
log, serving catalog, thread pools, the model (loaded fully before the app reports ready), the
experiments (`ExperimentAssigner` on the state dir; their variant bundles loaded too) — and
closes them in reverse order, flushing the exposure log first. The factories are the seams:
the defaults open what the settings name (`open_online_store`, `open_event_log`, the newest
model bundle); tests and the benchmark inject their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsdesk.data.eventlog import EventLog
from newsdesk.errors import BundleError, InvalidInput, StoreUnavailable
from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender
from newsdesk.monitoring.logging import configure_logging, get_logger
from newsdesk.monitoring.metrics import ServingMetrics
from newsdesk.monitoring.monitor import ServiceMonitor
from newsdesk.serving import heap
from newsdesk.serving.catalog import LiveCatalog, load_catalog
from newsdesk.serving.event_consumer import start_event_consumer
from newsdesk.serving.exploration import Explorer
from newsdesk.serving.feedback import EventIngestor, ExposureLogger
from newsdesk.serving.heap import GcPauses
from newsdesk.serving.middleware import ServingMiddleware, error_json
from newsdesk.serving.model_registry import ModelRegistry
from newsdesk.serving.periodic import Periodic
from newsdesk.serving.recommend_pipeline import PipelineConfig, RecommendPipeline
from newsdesk.serving.resilience import BreakerProbe, CircuitBreaker, GuardedOnlineStore
from newsdesk.serving.schemas import ErrorBody
from newsdesk.serving.settings import ServeSettings
from newsdesk.serving.state_keeper import OnlineStateKeeper
from newsdesk.serving.store_bootstrap import StoreBootstrapJob
from newsdesk.serving.variant_errors import VariantErrors
from newsdesk.serving.variants import ExperimentAssigner, VariantAssigner

RecommenderFactory = Callable[[str | None, OnlineStore], Recommender]
StoreFactory = Callable[[ServeSettings], OnlineStore]
EventLogFactory = Callable[[ServeSettings], EventLog]
BundleLister = Callable[[], list[dict[str, Any]]]

log = get_logger("newsdesk.serving.app")
API_VERSION = "1"


@dataclass
class Services:
    """Everything the routes use; lives on `app.state.services` between start and stop."""

    settings: ServeSettings
    metrics: ServingMetrics
    store: GuardedOnlineStore
    event_log: EventLog
    catalog: LiveCatalog
    registry: ModelRegistry
    pipeline: RecommendPipeline
    ingestor: EventIngestor
    exposure: ExposureLogger
    assigner: VariantAssigner
    io_pool: ThreadPoolExecutor
    breaker: CircuitBreaker
    clock: Callable[[], float]  # Unix seconds "now" of the service
    bootstrap: StoreBootstrapJob = dataclasses.field(
        default_factory=lambda: StoreBootstrapJob(None, None))  # type: ignore[arg-type]
    cluster: Any = None  # ClusterSync when settings.workers > 1: publish runtime changes
    live: Any = None  # LiveExperiments: interleaving / bandit slates (serving/live_experiments)
    keeper: Any = None  # OnlineStateKeeper: rebuilds a lost online state (state_keeper.py)
    explorer: Explorer = dataclasses.field(default_factory=Explorer)  # off unless configured


def services(request: Request) -> Services:
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        raise StoreUnavailable("the service is starting or stopping")
    return svc


# -- default factories (lazy imports: the heavy model stack loads only when used) ---------------
def default_store(settings: ServeSettings) -> OnlineStore:
    from newsdesk.features import open_online_store

    url = settings.online_store_url
    if url is None:
        state = settings.resolved_state_dir
        state.mkdir(parents=True, exist_ok=True)
        url = f"memory:///{(state / 'online.db').resolve()}"
        # a crash loses at most one snapshot period of state (the event log has it all)
        return open_online_store(url, snapshot_interval_s=settings.online_store_snapshot_s,
                                 max_user_exposures=settings.online_store_exposures)
    return open_online_store(url, max_user_exposures=settings.online_store_exposures)


def default_event_log(settings: ServeSettings) -> EventLog:
    from newsdesk.data.eventlog import open_event_log

    url = settings.event_log_url
    if url is None:
        state = settings.resolved_state_dir
        state.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(state / 'events.db').resolve()}"
    return open_event_log(url)


def default_recommender_factory(settings: ServeSettings) -> RecommenderFactory:
    """Loads bundles with `newsdesk.models.bundle`, sharing one warmed embedder per kind.

    The embedder is built and warmed at load time (not on the first PUT /v1/articles), so a new
    article is embedded in milliseconds and recommendable within the 2 s promise; hot swaps
    between bundles of the same embedder reuse it instead of loading the model again.
    """
    embedders: dict[str, Any] = {}

    def load(version: str | None, store: OnlineStore) -> Recommender:
        from newsdesk.content import make_embedder
        from newsdesk.models.bundle import load_recommender, read_manifest, resolve_bundle

        if settings.bundles_url is not None:  # object storage: a verified local copy
            from newsdesk.models.bundle_remote import fetch_bundle

            path = fetch_bundle(settings.bundles_url, version, settings.bundles_dir)
        else:
            path = resolve_bundle(settings.bundles_dir, version)
        short = str(read_manifest(path).get("embedder", {}).get("short_name", "minilm"))
        if short not in embedders:
            embedder = make_embedder(short)
            embedder.embed(["warm up"])
            embedders[short] = embedder
        rec = load_recommender(path, store, embedder=embedders[short], ranker=settings.ranker,
                               compiled_cache_dir=settings.compiled_ranker_cache_dir)
        rec.warm(make_clock(settings)())  # before it serves: no first-request stall
        cf = getattr(rec, "cf", None)
        if cf is not None:  # a new bucket's CF fold-in off the request path
            cf.refresh_in_background = True
        return rec

    return load


def default_bundle_lister(settings: ServeSettings) -> BundleLister:
    def listing() -> list[dict[str, Any]]:
        from newsdesk.models.bundle import list_bundles

        rows = []
        for item in list_bundles(settings.bundles_dir):
            if isinstance(item, dict):
                rows.append(dict(item))
            elif dataclasses.is_dataclass(item) and not isinstance(item, type):
                rows.append(dataclasses.asdict(item))
            elif hasattr(item, "model_dump"):
                rows.append(item.model_dump(mode="json"))
            else:
                rows.append({"version": str(item)})
        return [{k: (str(v) if not isinstance(v, int | float | str | bool | None) else v)
                 for k, v in row.items()} for row in rows]

    return listing


def _bundle_path(settings: ServeSettings, version: str) -> Any:
    from newsdesk.models.bundle import resolve_bundle

    return resolve_bundle(settings.bundles_dir, version)


def start_llm_service(settings: ServeSettings, registry: Any) -> Any:
    """The LLM layer from NEWSDESK_LLM_* (a bad value stops the start with a ConfigError)."""
    from newsdesk.llm.enrich_queue import EnrichQueue
    from newsdesk.llm.service import LLMService

    service = LLMService(state_dir=settings.resolved_state_dir, registry=registry, serving=True)
    EnrichQueue.attach(service, settings.resolved_state_dir)
    return service


def yield_to_serving(llm: Any, pipeline: RecommendPipeline) -> None:
    """The enrichment worker (if any) waits while the recommend path is busy."""
    from newsdesk.serving.load_signal import LoadSignal

    queue = getattr(llm, "enrich_queue", None)
    if queue is not None:
        queue.load = LoadSignal(lambda: pipeline.stage_seconds,
                                llm.settings.enrich_yield_above)


def make_clock(settings: ServeSettings) -> Callable[[], float]:
    """Wall time, or a clock that starts at `settings.clock_start` and runs in real time."""
    if settings.clock_start is None:
        return time.time
    offset = settings.clock_start.timestamp() - time.time()
    return lambda: time.time() + offset


# -- the factory ------------------------------------------------------------------------------
def create_app(settings: ServeSettings, *, recommender_factory: RecommenderFactory | None = None,
               store_factory: StoreFactory | None = None,
               event_log_factory: EventLogFactory | None = None,
               bundle_lister: BundleLister | None = None,
               variant_assigner: VariantAssigner | None = None,
               catalog: LiveCatalog | None = None,
               llm_factory: Callable[[ServeSettings, Any], Any] | None = None) -> FastAPI:
    """Build the API; resources open in the lifespan (see the module docstring)."""
    configure_logging(settings.log_level)
    metrics = ServingMetrics()
    make_model = recommender_factory or default_recommender_factory(settings)
    monitor = ServiceMonitor(metrics.registry, threshold=settings.psi_threshold,
                             window=settings.drift_window_rows,
                             sample_every=settings.drift_sample_every,
                             interval_s=settings.monitor_interval_s)
    make_model = monitor.wrap_factory(make_model, lambda v: _bundle_path(settings, v))
    lister = bundle_lister or (None if recommender_factory else default_bundle_lister(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        io_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="newsdesk-io")
        model_pool = ThreadPoolExecutor(max_workers=settings.model_threads,
                                        thread_name_prefix="newsdesk-model")
        breaker = CircuitBreaker(
            "online_store", failure_threshold=settings.breaker_failure_threshold,
            reset_s=settings.breaker_reset_s,
            on_change=lambda name, state: metrics.breaker_state.labels(name).set(
                1.0 if state == "open" else 0.0),
        )
        raw_store = await loop.run_in_executor(io_pool, store_factory or default_store, settings)
        store = GuardedOnlineStore(raw_store, breaker)
        # closes the circuit within one probe interval of the store answering again
        probe = BreakerProbe(breaker, raw_store.ping, interval_s=settings.breaker_probe_s).start()
        event_log = await loop.run_in_executor(
            io_pool, event_log_factory or default_event_log, settings)
        cat = catalog
        if cat is None:
            hours = settings.live_max_age_hours
            max_age_s = None if hours is None else hours * 3600
            cat = await loop.run_in_executor(
                io_pool, lambda: load_catalog(settings.dataset_dir, max_age_s=max_age_s))
        def on_swap(action: str, version: str) -> None:
            metrics.model_swaps.labels(action).inc()
            metrics.set_model(version)

        registry = ModelRegistry(lambda version: make_model(version, store), lister,
                                 on_swap=on_swap, on_refused=lambda version, error:
                                 metrics.model_swaps.labels("refused").inc())
        pipeline = RecommendPipeline(registry, store, cat, metrics, model_pool, PipelineConfig(
            budget_s=settings.budget_ms / 1000,
            personalised_timeout_s=settings.personalised_timeout_ms / 1000,
            trending_timeout_s=settings.trending_timeout_ms / 1000,
            inline_model=settings.inline_model,
            max_inflight=settings.max_inflight_model_calls,
        ))
        clock = make_clock(settings)
        # a shared Redis Stream log: this replica's consumer applies it (None otherwise)
        consumer = await loop.run_in_executor(io_pool, lambda: start_event_consumer(
            event_log, raw_store, metrics=metrics, claim_idle_s=settings.event_claim_idle_s))
        ingestor = EventIngestor(event_log, store, metrics, io_pool, clock=clock,
                                 applier=consumer)
        exposure = ExposureLogger(ingestor, metrics, maxsize=settings.exposure_queue_size)
        exposure.start()
        try:
            await loop.run_in_executor(io_pool, registry.promote, settings.bundle_version)
        except Exception as exc:  # start anyway: /readyz says 503 until an admin loads one
            log.error("model_load_failed", error=f"{type(exc).__name__}: {exc}")
            if settings.bundle_version is None and lister is not None:
                # the newest bundle is corrupt: serve the newest one that loads
                older = [str(b["version"]) for b in reversed(lister())]
                try:
                    swap = await loop.run_in_executor(
                        io_pool, registry.promote_first_valid, older)
                    log.warning("model_fallback_to_older_bundle", version=swap.active)
                except Exception as exc2:
                    log.error("model_load_failed", error=f"{type(exc2).__name__}: {exc2}")
        assigner = variant_assigner
        if assigner is None:  # experiments from the state dir (none: everyone in production)
            assigner = ExperimentAssigner.open(settings.resolved_state_dir, registry)
            try:  # the running experiments' variant bundles, loaded before serving
                await loop.run_in_executor(io_pool, assigner.pin_bundles)
            except Exception as exc:  # served by the active model until an admin fixes it
                log.error("variant_bundle_load_failed", error=f"{type(exc).__name__}: {exc}")
        bootstrap = StoreBootstrapJob(raw_store, settings.dataset_dir, event_log=event_log,
                                      enabled=settings.bootstrap_store)
        keeper = OnlineStateKeeper(raw_store, event_log, settings.dataset_dir
                                   if settings.bootstrap_store else None,
                                   registry=metrics.registry, erased=app.state.erasures.users,
                                   slow_store_s=settings.slow_store_ms / 1000)
        await loop.run_in_executor(io_pool, keeper.prepare)  # before the bootstrap and requests
        probe.on_recovered = keeper.wake  # a store back empty: rebuilt at once
        ingestor.not_applied = keeper.defer
        svc = Services(settings, metrics, store, event_log, cat, registry, pipeline, ingestor,
                       exposure, assigner, io_pool, breaker, clock, bootstrap, keeper=keeper,
                       explorer=Explorer.from_settings(settings))
        if settings.workers > 1:  # catch up with the other workers' changes before ready
            from newsdesk.serving.cluster import ClusterSync

            svc.cluster = await ClusterSync.start(svc)
        bootstrap.start()
        keeper.start(bootstrap)
        from newsdesk.serving.live_experiments import start_live_experiments
        from newsdesk.serving.rollout_autopilot import start_autopilot

        # None when off or with a custom assigner
        autopilot = start_autopilot(svc, app.state.variant_errors)
        svc.live = await loop.run_in_executor(io_pool, start_live_experiments, svc)
        watcher = None
        if settings.watch_active_s > 0:  # follow the pipeline's ACTIVE pointer
            from newsdesk.serving.bundle_watcher import ActiveWatcher

            watcher = ActiveWatcher(svc, interval_s=settings.watch_active_s).start()
        app.state.services = svc
        # the LLM layer (newsdesk.llm): switch, metrics, lazily loaded provider, enrichment
        # worker; never on the request path (llm/service.py)
        app.state.llm = (llm_factory or start_llm_service)(settings, metrics.registry)
        yield_to_serving(app.state.llm, pipeline)
        metrics.catalog_size.set(len(cat))
        monitor.sources(now=clock, catalog=lambda: cat,
                        active=lambda: registry.active if registry.ready else None,
                        ready=lambda: registry.ready and bool(store.ping()))
        def prepare_live_sets() -> None:  # the next live set, ahead of its time boundary
            for model in registry.serving():
                if hasattr(model, "prepare_live_set"):
                    model.prepare_live_set(clock(), 1.0)

        live_warmer = Periodic("live-set-warmer", 0.25, prepare_live_sets)
        live_warmer.start()
        # the state loaded so far (store, catalog, models) out of the collector's reach; a
        # bootstrap or rebuild still running freezes what it loads when it ends (heap.py)
        heap.freeze_after_loads = settings.gc_freeze
        gc_pauses = GcPauses(metrics.registry).start()
        if settings.gc_freeze:
            heap.freeze_heap("serving started")
        monitor.start()
        log.info("serving_started", model_version=registry.version, catalog=len(cat))
        try:
            yield
        finally:
            app.state.services = None
            if watcher is not None:
                watcher.stop()
            monitor.stop()
            live_warmer.stop()
            gc_pauses.stop()
            if app.state.llm is not None:
                await loop.run_in_executor(io_pool, app.state.llm.close)
                app.state.llm = None
            if autopilot is not None:
                autopilot.stop()
            if svc.live is not None:
                svc.live.bandits.stop()
            if svc.cluster is not None:
                await svc.cluster.stop()
            await exposure.close()
            if isinstance(assigner, ExperimentAssigner) and variant_assigner is None:
                assigner.close()
            model_pool.shutdown(wait=True, cancel_futures=True)
            bootstrap.join(timeout_s=60)  # a half-finished load must not race close()
            keeper.stop()
            probe.stop()
            if consumer is not None:
                consumer.stop()
            event_log.close()
            store.close()
            io_pool.shutdown(wait=True, cancel_futures=True)
            if app.state.rate_limiter is not None:
                await app.state.rate_limiter.aclose()
            log.info("serving_stopped")

    app = FastAPI(
        title="newsdesk recommendation API", version=API_VERSION, lifespan=lifespan,
        description="Personalised news recommendations with a real-time feedback loop.",
    )
    app.state.metrics = metrics
    app.state.monitor = monitor
    # 5xx per experiment variant (routes/recommendations.py), for the rollout guardrails
    app.state.variant_errors = VariantErrors(metrics.registry)
    app.state.services = None
    app.state.llm = None
    _install_error_handlers(app)
    from newsdesk.serving.routes import (
        admin,
        articles,
        events,
        experiments,
        headlines,
        health,
        interests,
        monitoring,
        recommendations,
        users,
    )
    from newsdesk.serving.routes import llm as llm_routes

    for module in (recommendations, articles, events, health, admin, experiments, monitoring,
                   users, interests, headlines, llm_routes):
        # /v1 answers these from serving/access_guard.py (API keys, rate limits)
        app.include_router(module.router, responses=None if module is health else {
            401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}})
    from newsdesk.serving import dashboard

    app.include_router(dashboard.router)
    from newsdesk.serving.access_guard import install_access_guard

    install_access_guard(app, settings, metrics.registry)  # rate limits, API keys, audit
    from newsdesk.data.erasure import ErasureList

    app.state.erasures = ErasureList.in_dir(settings.resolved_state_dir)  # routes/users.py
    app.add_middleware(ServingMiddleware, metrics=metrics,
                       max_body_bytes=settings.max_body_bytes)
    if settings.tracing != "off":
        from newsdesk.monitoring.tracing import instrument_app

        instrument_app(app, settings.tracing)
    return app


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _json(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            if loc and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:] if len(loc) > 1 else loc
            fields.append({"field": ".".join(loc) or "body", "message": str(err.get("msg"))})
        first = fields[0] if fields else {"field": "body", "message": "invalid"}
        if request.url.path == "/v1/events":  # data quality: rejected events by reason
            errors = exc.errors()
            reason = str(errors[0].get("type", "invalid")) if errors else "invalid"
            request.app.state.monitor.data.record_rejected(reason)
        return _json(*error_json(422, "invalid_request",
                                 f"field '{first['field']}': {first['message']}", _rid(request),
                                 fields))

    @app.exception_handler(InvalidInput)
    async def _invalid_input(request: Request, exc: InvalidInput) -> Response:
        field = exc.field or "body"
        return _json(*error_json(422, "invalid_request", str(exc), _rid(request),
                                 [{"field": field, "message": str(exc)}]))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> Response:
        log.warning("unavailable", error=str(exc))
        return _json(*error_json(503, "unavailable",
                                 "a backing store is unavailable; retry later", _rid(request)))

    @app.exception_handler(BundleError)
    async def _bundle(request: Request, exc: BundleError) -> Response:
        return _json(*error_json(409, "bundle_error", str(exc), _rid(request)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8, ...):
            # the documented answer to a body that cannot be read is a 422 naming it
            message = f"field 'body': cannot be parsed ({exc.detail})"
            return _json(*error_json(422, "invalid_request", message, _rid(request),
                                     [{"field": "body", "message": message}]))
        # "field 'x': ..." messages (size limits, API keys) name the field in `fields` too
        named = _FIELD_MESSAGE.match(str(exc.detail))
        fields = [{"field": named.group(1), "message": str(exc.detail)}] if named else None
        status, body = error_json(exc.status_code, _http_error_name(exc.status_code),
                                  str(exc.detail), _rid(request), fields)
        return Response(body, status_code=status, media_type="application/json",
                        headers=headers)


_FIELD_MESSAGE = re.compile(r"^field '([^']+)'")


def _http_error_name(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            413: "payload_too_large"}.get(status, "http_error")
