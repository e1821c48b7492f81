"""Experiments: create / list / kill (admin) and the analysis report.

    POST /v1/admin/experiments              YAML or JSON config (one experiment, a list, or a
                                            suite mapping); 422 naming the field when invalid
    GET  /v1/admin/experiments              every experiment, its version and rollout state
    POST /v1/admin/experiments/{id}/kill    everyone to control from the next request on
    GET  /v1/experiments/{id}/report        per-variant CTR with CIs, SRM check, comparisons

Every route needs the admin `X-API-Key`. The report is computed ON DEMAND on every call: the
whole event log is exported into a temporary dataset directory (`EventLog.export`) and analysed
with `newsdesk.experiments.analysis` — its cost grows with the log (seconds at millions of
events), so poll it, don't put it on a dashboard refreshing every second.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any

import numpy as np
import orjson
import yaml
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response

from newsdesk.data.eventlog import EventLog
from newsdesk.errors import ConfigError, DatasetError, InvalidInput
from newsdesk.experiments.analysis import AnalysisOptions, analyze_dataset
from newsdesk.experiments.config import ExperimentConfig, ExperimentSuite, parse_suite
from newsdesk.experiments.report import json_safe
from newsdesk.experiments.rollout import RolloutState
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.app import Services, services
from newsdesk.serving.middleware import error_json
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.routes.admin import require_admin
from newsdesk.serving.schemas import ErrorBody, ExperimentList, ExperimentsAck, KillAck
from newsdesk.serving.variants import ExperimentAssigner, control_of

log = get_logger("newsdesk.serving.experiments")
ExperimentId = Annotated[str, Path(min_length=1, max_length=128,
                                   pattern=r"^[A-Za-z0-9_.@:\-]+$")]
Actor = Annotated[str, Header(alias="X-Actor", min_length=1, max_length=128)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody},
    409: {"model": ErrorBody}, 422: {"model": ErrorBody}}
_FIELD = re.compile(r"field '([^']*)'")

admin_router = APIRouter(prefix="/v1/admin/experiments", tags=["experiments"],
                         dependencies=[Depends(require_admin)], responses=_ERRORS)
report_router = APIRouter(prefix="/v1/experiments", tags=["experiments"],
                          dependencies=[Depends(require_admin)], responses=_ERRORS)
router = APIRouter()


def _experiments(svc: Services) -> ExperimentAssigner:
    if not isinstance(svc.assigner, ExperimentAssigner):
        raise HTTPException(409, "experiments are disabled: the app runs a custom assigner")
    return svc.assigner


def _config_error(request: Request, exc: ConfigError) -> Response:
    """422 with one entry per invalid field (the message of `format_validation_error`)."""
    fields = []
    for line in str(exc).splitlines():
        m = _FIELD.search(line)
        fields.append({"field": m.group(1) if m else "body", "message": line})
    status, body = error_json(422, "invalid_config", str(exc).splitlines()[0], request_id(request),
                              fields)
    return Response(body, status_code=status, media_type="application/json")


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        raise InvalidInput("field 'body': an experiment config (YAML or JSON) is required",
                           field="body")
    try:
        if "json" in content_type:
            return orjson.loads(raw)
        return yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if "json" in content_type else "YAML"
        raise InvalidInput(f"field 'body': not valid {kind}: {exc}", field="body") from exc


@admin_router.post("", status_code=201, response_model=ExperimentsAck,
                   summary="Create or update experiments (YAML or JSON)",
                   description="Validated before anything is stored; every bundle a variant "
                               "serves is loaded (and kept loaded) before the experiment runs. "
                               "Each change is versioned and audited under the X-Actor header.")
async def create_experiments(request: Request, x_actor: Actor = "admin-api") -> Response:
    svc = services(request)
    exp = _experiments(svc)
    data = _parse_body(await request.body(), request.headers.get("content-type", ""))
    try:
        suite: ExperimentSuite = parse_suite(data, "body")
    except ConfigError as exc:
        return _config_error(request, exc)
    exp.check(suite)  # InvalidInput (422) on overlaps with stored experiments, bad pipelines
    loop = asyncio.get_running_loop()
    for i, e in enumerate(suite.experiments):
        for j, v in enumerate(e.variants):
            if v.bundle is None:
                continue
            try:  # load before storing: a variant never points at a model that is not there
                await loop.run_in_executor(svc.io_pool, svc.registry.pin, v.bundle)
            except Exception as exc:
                where = f"experiments.{i}.variants.{j}.bundle"
                raise InvalidInput(f"field '{where}': bundle '{v.bundle}' cannot be loaded: "
                                   f"{exc}", field=where) from exc
    stored = exp.create(suite, x_actor)
    log.info("experiments_stored", ids=[s.config.id for s in stored], actor=x_actor)
    return json_response({"request_id": request_id(request), "experiments": [
        {"id": s.config.id, "version": s.version, "status": s.config.status.value}
        for s in stored]}, 201)


@admin_router.get("", response_model=ExperimentList,
                  summary="Every experiment with its version and rollout state")
async def list_experiments(request: Request) -> Response:
    exp = _experiments(services(request))
    return json_response({"request_id": request_id(request), "experiments": exp.describe()})


@admin_router.post("/{experiment_id}/kill", response_model=KillAck,
                   summary="Kill switch: everyone gets the control variant from the next request")
async def kill_experiment(experiment_id: ExperimentId, request: Request,
                          reason: Annotated[str, Query(max_length=500)] = "",
                          x_actor: Actor = "admin-api") -> Response:
    exp = _experiments(services(request))
    try:
        config = exp.registry.get(experiment_id).config
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from exc
    exp.kill(experiment_id, x_actor, reason)
    log.warning("experiment_killed", experiment=experiment_id, actor=x_actor, reason=reason)
    return json_response({"request_id": request_id(request), "experiment_id": experiment_id,
                          "killed": True, "control": control_of(config)})


def allocation(config: ExperimentConfig, state: RolloutState | None
               ) -> tuple[dict[str, float] | None, str | None]:
    """Expected allocation for the SRM check, and a note when it is not well defined.

    A staged rollout that never left its first stage splits by that stage's fraction; once the
    fraction changed (advance, kill, rollback) units moved between arms and no single
    allocation holds: the configured weights are used and the note says so."""
    if state is None:
        return None, None
    changed = [h["event"] for h in state.history if h["event"] != "start"]
    if not changed and config.rollout is not None:
        f = state.plan.stages[0]
        weights = {v.name: 0.0 for v in config.variants}
        weights[config.rollout.treatment] = f
        weights[config.rollout.control] = 1.0 - f
        return {k: w for k, w in weights.items() if w > 0}, None
    if not changed:
        return None, None
    return None, (f"the allocation changed during the experiment ({', '.join(changed)}): units "
                  "moved between variants (those seen in several are dropped); the SRM check "
                  "uses the configured weights and may flag this change")


def _analyze(event_log: EventLog, experiment_id: str, config: ExperimentConfig,
             state: RolloutState | None) -> dict[str, Any]:
    weights, note = allocation(config, state)
    with tempfile.TemporaryDirectory(prefix="newsdesk-report-") as tmp:
        dataset = FsPath(tmp) / "dataset"
        event_log.export(dataset)
        if config.type != "ab":  # interleaving / bandit: their own estimators
            from newsdesk.experiments.live_analysis import live_report

            return json_safe({"experiment": experiment_id, **live_report(dataset, config),
                              "dataset": "event log (exported on demand)"})
        # a daily look with a zero variance gives 0/0 inside the mSPRT (reported as NaN ->
        # null); not worth a warning per report
        with np.errstate(invalid="ignore", divide="ignore"):
            result = analyze_dataset(dataset, experiment_id, config,
                                     AnalysisOptions(weights=weights))
    result["dataset"] = "event log (exported on demand)"
    result["allocation_note"] = note
    return json_safe(result)


@report_router.get("/{experiment_id}/report",
                   summary="Analysis of an experiment, computed on demand from the event log",
                   description="Per-variant users, shown, clicks, CTR / clicks per user / dwell "
                               "with 95% CIs; SRM chi-square check (conclusions blocked on a "
                               "mismatch); treatment vs control lifts (fixed, CUPED, always-"
                               "valid mSPRT). Exports the whole event log on every call.")
async def experiment_report(experiment_id: ExperimentId, request: Request) -> Response:
    svc = services(request)
    exp = _experiments(svc)
    try:
        config = exp.registry.get(experiment_id).config
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from exc
    try:
        state: RolloutState | None = exp.rollouts.state(experiment_id).model_copy(deep=True)
    except ConfigError:
        state = None
    # the slates served so far are still in the exposure queue: flush them (bounded wait)
    try:
        await asyncio.wait_for(svc.exposure.queue.join(), 5.0)
    except TimeoutError:
        log.warning("report_exposures_pending", pending=svc.exposure.queue.qsize())
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(svc.io_pool, _analyze, svc.event_log, experiment_id,
                                            config, state)
    except DatasetError as exc:
        raise HTTPException(409, f"not enough data to analyse '{experiment_id}': {exc}") from exc
    return json_response({"request_id": request_id(request), "computed": "on demand",
                          **result})


router.include_router(admin_router)
router.include_router(report_router)
