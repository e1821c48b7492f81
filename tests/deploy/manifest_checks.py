"""Checks that keep deploy/ in step with the code: settings, CLI flags, routes, ports.

No Docker engine or cluster runs in the tests, so each artifact is read as data and held against
the code it names:

    Dockerfile / compose.yaml / k8s/*.yaml
        │  command line ──> parsed by the real `newsdesk serve` command (unknown flag: problem)
        │  NEWSDESK_* env ──> must be a ServeSettings field, not shadowed by a flag
        │  command + env ──> load_settings() must accept them (the server would refuse to start)
        └─ ports, probe / healthcheck / scrape paths ──> agree with --port and the app's routes

Each `check_*` returns a list of problems (empty: fine), one line each naming the file, the
object and the field, so a negative test can mutate a manifest and look for its problem.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import typer
import yaml

from newsdesk.errors import ConfigError
from newsdesk.serving.settings import MIN_ADMIN_KEY_CHARS, ServeSettings, load_settings

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
ENV_PREFIX = str(ServeSettings.model_config.get("env_prefix", ""))
ADMIN_KEY_ENV = f"{ENV_PREFIX}ADMIN_API_KEY"
# Stands in for a value kept outside the repository (a Secret, the operator's shell).
SECRET_PLACEHOLDER = "s" * (2 * MIN_ADMIN_KEY_CHARS)
CONTAINER_HOST = "0.0.0.0"

# How `newsdesk serve` (cli/serve_cmds.py) hands its parameters to load_settings. A flag added
# there without an entry here fails test_every_serve_flag_is_mapped, so this cannot go stale.
SERVE_PARAM_TO_SETTING = {
    "dataset": "dataset_dir", "bundles": "bundles_dir", "bundles_url": "bundles_url",
    "version": "bundle_version",
    "host": "host", "port": "port", "redis_url": "online_store_url", "state_dir": "state_dir",
    "event_log": "event_log_url", "clock_start": "clock_start", "log_level": "log_level",
    "workers": "workers",
}
SERVE_PARAMS_NOT_SETTINGS = {"access_log"}  # handed to uvicorn directly

BUILD_TOOLS = {"build-essential", "gcc", "g++", "cc", "clang", "make", "cmake", "cargo",
               "rustc", "libc6-dev", "python3-dev", "musl-dev", "gfortran"}


# Recent typer vendors its own click, whose errors do not derive from click's.
USAGE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException, *([typer.TyperException] if hasattr(typer, "TyperException") else []))


class CheckError(Exception):
    """A manifest that cannot even be read as its kind (the message names file and field)."""


# --------------------------------------------------------------------------- reading files

def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a (multi-document) YAML file, empty documents dropped."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def yaml_files(directory: Path = DEPLOY_DIR) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in {".yaml", ".yml"})


def k8s_documents(directory: Path = DEPLOY_DIR / "k8s") -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            doc.setdefault("__file__", path.name)  # for messages; not a Kubernetes field
            docs.append(doc)
    return docs


# --------------------------------------------------------------------------- the serve command

def serve_command() -> Any:
    from newsdesk.cli.main import app

    group = typer.main.get_command(app)
    return group.commands["serve"]  # type: ignore[attr-defined, no-any-return]


def parse_serve_args(args: list[str]) -> dict[str, Any]:
    """Parse `serve ...` with the real command; raises CheckError on a flag it does not know."""
    if not args or args[0] != "serve":
        raise CheckError(f"command {args!r} does not run 'newsdesk serve'")
    try:
        ctx = serve_command().make_context("serve", list(args[1:]), resilient_parsing=False)
    except USAGE_ERRORS as exc:
        raise CheckError(f"'newsdesk serve' refuses {args[1:]!r}: {exc.format_message()}") from exc
    return dict(ctx.params)


def settings_from_flags(params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments `serve` passes to load_settings (None: left to env / default)."""
    values = {SERVE_PARAM_TO_SETTING[k]: v for k, v in params.items()
              if k in SERVE_PARAM_TO_SETTING}
    return {k: v for k, v in values.items() if v is not None}


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def settings_env_names() -> dict[str, str]:
    """NEWSDESK_* variable -> ServeSettings field, for every field."""
    return {env_name(field): field for field in ServeSettings.model_fields}


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ with every NEWSDESK_* variable replaced by `env` (restored afterwards)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for k in saved:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[k]
        os.environ.update(saved)


@dataclass
class Container:
    """What a deployment runs: `newsdesk <args>` with `env`, reachable on `port`."""

    where: str  # e.g. "k8s/deployment.yaml Deployment/newsdesk container newsdesk"
    args: list[str]
    env: dict[str, str]
    port: int | None
    origins: dict[str, str] | None = None  # env name -> where it is set, when not `where`


def check_container(c: Container) -> tuple[list[str], ServeSettings | None]:
    """Flags, env names and the resulting settings of one container; also its settings."""
    problems: list[str] = []
    try:
        params = parse_serve_args(c.args)
    except CheckError as exc:
        return [f"{c.where}: {exc}"], None
    flags = settings_from_flags(params)
    known = settings_env_names()
    for name in sorted(c.env):
        if not name.startswith(ENV_PREFIX):
            continue
        origin = f" (set in {c.origins[name]})" if c.origins and name in c.origins else ""
        if name not in known:
            problems.append(f"{c.where}: env {name}{origin} is not a ServeSettings field "
                            f"(settings/env prefix {ENV_PREFIX})")
        elif known[name] in flags:
            problems.append(f"{c.where}: env {name}{origin} has no effect: the command line "
                            f"sets '{known[name]}' (a flag, or its default, wins over the env)")
    if problems:
        return problems, None
    try:
        with _environment(c.env):
            settings = load_settings(**flags)
    except ConfigError as exc:
        return [f"{c.where}: the server would refuse to start: {exc}"], None
    if settings.host != CONTAINER_HOST:
        problems.append(f"{c.where}: listens on {settings.host!r}; a container must bind "
                        f"{CONTAINER_HOST} (--host)")
    if c.port is not None and settings.port != c.port:
        problems.append(f"{c.where}: serves on port {settings.port} (--port) but declares "
                        f"port {c.port}")
    return problems, settings


def check_online_store_shared(where: str, settings: ServeSettings | None, replicas: int,
                              services: Mapping[str, int | None]) -> list[str]:
    """Several replicas need one online store: a redis:// URL whose host is a service here."""
    if settings is None or replicas < 2:
        return []
    url = settings.online_store_url or ""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        return [f"{where}: {replicas} replicas with online store {url!r}; each would keep its "
                f"own user state: set {env_name('online_store_url')} to a redis:// URL"]
    if parts.hostname not in services:
        return [f"{where}: online store host {parts.hostname!r} is none of the services "
                f"{sorted(services)}"]
    port = services[parts.hostname]
    if port is not None and (parts.port or 6379) != port:
        return [f"{where}: online store port {parts.port or 6379} != service "
                f"{parts.hostname!r} port {port}"]
    return []


def check_route(where: str, path: str | None, expected: str, routes: set[str]) -> list[str]:
    if path != expected:
        return [f"{where}: path {path!r}, expected {expected!r}"]
    if path not in routes:
        return [f"{where}: path {path!r} is not a route of the app"]
    return []


# --------------------------------------------------------------------------- Dockerfile

@dataclass
class Instruction:
    keyword: str  # upper case
    value: str
    line: int


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (one list per FROM); continuations joined, comments gone."""
    stages: list[list[Instruction]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending:
            start = number
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical = " ".join(p for p in pending if p)
        pending = []
        keyword, _, value = logical.partition(" ")
        instruction = Instruction(keyword.upper(), value.strip(), start)
        if instruction.keyword == "FROM":
            stages.append([])
        if not stages:
            if instruction.keyword == "ARG":  # ARGs before the first FROM are global
                continue
            raise CheckError(f"line {start}: {keyword} before the first FROM")
        stages[-1].append(instruction)
    return stages


def _exec_form(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return shlex.split(value)
    return [str(p) for p in parsed]


def _env_pairs(value: str) -> dict[str, str]:
    tokens = shlex.split(value)
    if tokens and "=" not in tokens[0]:  # legacy form: ENV KEY value with spaces
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(t.split("=", 1) for t in tokens)


def check_dockerfile(text: str, routes: set[str], name: str = "Dockerfile") -> list[str]:
    try:
        stages = parse_dockerfile(text)
    except CheckError as exc:
        return [f"{name}: {exc}"]
    if len(stages) < 2:
        return [f"{name}: {len(stages)} stage(s); expected a multi-stage build (>= 2 FROM)"]
    final = stages[-1]
    where = f"{name} final stage (line {final[0].line})"
    problems: list[str] = []
    by_kw: dict[str, list[Instruction]] = {}
    for ins in final:
        by_kw.setdefault(ins.keyword, []).append(ins)

    users = by_kw.get("USER", [])
    if not users:
        problems.append(f"{where}: no USER; the server would run as root")
    else:
        user = users[-1].value.split(":")[0]
        if user in {"root", "0"}:
            problems.append(f"{name} line {users[-1].line}: USER {users[-1].value} is root")
    for ins in by_kw.get("RUN", []):
        words = {re.split(r"[=:]", w)[0] for w in re.split(r"[\s;&|()]+", ins.value)}
        tools = sorted(words & BUILD_TOOLS)
        if tools:
            problems.append(f"{name} line {ins.line}: final stage installs build tools {tools}")

    env: dict[str, str] = {}  # ENV does not cross stages: the final one's is what runs
    for ins in by_kw.get("ENV", []):
        env.update(_env_pairs(ins.value))
    exposed = [int(p.split("/")[0]) for ins in by_kw.get("EXPOSE", [])
               for p in ins.value.split()]
    entrypoint = _exec_form(by_kw["ENTRYPOINT"][-1].value) if "ENTRYPOINT" in by_kw else []
    cmd = _exec_form(by_kw["CMD"][-1].value) if "CMD" in by_kw else []
    argv = entrypoint + cmd
    if argv[:1] != ["newsdesk"]:
        problems.append(f"{where}: runs {argv!r}, not the newsdesk command")
    container = Container(where, argv[1:], env, exposed[0] if len(exposed) == 1 else None)
    if len(exposed) != 1:
        problems.append(f"{where}: EXPOSE {exposed}; expected exactly one port")
    found, settings = check_container(container)
    problems += found

    checks = by_kw.get("HEALTHCHECK", [])
    if not checks:
        problems.append(f"{where}: no HEALTHCHECK")
    else:
        hc = checks[-1]
        match = re.search(r"https?://[^/:'\"\s]+:(\d+)(/[^'\"\s]*)", hc.value)
        if match is None:
            problems.append(f"{name} line {hc.line}: HEALTHCHECK calls no http://host:port/path")
        else:
            problems += check_route(f"{name} line {hc.line}: HEALTHCHECK", match.group(2),
                                    "/healthz", routes)
            if settings is not None and int(match.group(1)) != settings.port:
                problems.append(f"{name} line {hc.line}: HEALTHCHECK port {match.group(1)} "
                                f"!= --port {settings.port}")
    return problems


def check_dockerignore(dockerfile: str, dockerignore: str,
                       name: str = "Dockerfile.dockerignore") -> list[str]:
    """Every path the Dockerfile COPYs from the context survives the ignore file."""
    patterns = [line.strip() for line in dockerignore.splitlines()
                if line.strip() and not line.strip().startswith("#")]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:  # the last matching pattern decides, as in Docker
            negate = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, glob) or path.startswith(glob + "/"):
                verdict = not negate
        return verdict

    problems = []
    for stage in parse_dockerfile(dockerfile):
        for ins in stage:
            if ins.keyword not in {"COPY", "ADD"}:
                continue
            words = [w for w in _exec_form(ins.value) if not w.startswith("--")]
            if any(w.startswith("--from") for w in shlex.split(ins.value)):
                continue
            for source in words[:-1]:
                if ignored(os.path.normpath(source)):
                    problems.append(f"{name}: excludes {source!r}, which the Dockerfile's line "
                                    f"{ins.line} copies")
    return problems


# --------------------------------------------------------------------------- compose

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default}: the default; a required or bare ${VAR}: a placeholder."""
    return _INTERPOLATION.sub(
        lambda m: m.group(3) if m.group(2) == "-" else SECRET_PLACEHOLDER, value)


def _compose_env(where: str, service: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    env: dict[str, str] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if isinstance(value, bool):  # compose refuses YAML booleans in environment
            problems.append(f"{where}: environment {key}: {value!r} must be quoted")
            continue
        env[key] = interpolate("" if value is None else str(value))
    return env, problems


def _container_port(port_spec: Any) -> int:
    if isinstance(port_spec, Mapping):
        return int(port_spec["target"])
    return int(str(port_spec).split("/")[0].rsplit(":", 1)[-1].split("-")[0])


def check_compose(compose: Mapping[str, Any], routes: set[str], *,
                  compose_dir: Path = DEPLOY_DIR, name: str = "compose.yaml") -> list[str]:
    services: Mapping[str, Any] = compose.get("services") or {}
    problems: list[str] = []

    def image(svc: Mapping[str, Any]) -> str:
        return str(svc.get("image", "")).split("/")[-1].split(":")[0]

    redis = [n for n, s in services.items() if image(s) == "redis"]
    if not redis:
        problems.append(f"{name}: no redis service")
    apps = [n for n, s in services.items() if "build" in s or image(s) == "newsdesk"]
    if len(apps) != 1:
        return problems + [f"{name}: expected one newsdesk service, found {apps}"]
    app_name = apps[0]
    svc = services[app_name]
    where = f"{name} service {app_name}"
    replicas = int((svc.get("deploy") or {}).get("replicas", svc.get("scale", 1)))
    if replicas < 2:
        problems.append(f"{where}: {replicas} replica(s); expected >= 2 (deploy.replicas)")
    ports = [_container_port(p) for p in svc.get("ports") or []]
    expose = [int(p) for p in svc.get("expose") or []]
    declared = set(ports + expose)
    if len(declared) > 1:
        problems.append(f"{where}: several container ports {sorted(declared)}")
    env, env_problems = _compose_env(where, svc)
    problems += env_problems
    command = svc.get("command")
    if command is None:
        problems.append(f"{where}: no command (the checks need the serve flags spelled out)")
        return problems
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    found, settings = check_container(
        Container(where, args, env, next(iter(declared)) if len(declared) == 1 else None))
    problems += found
    problems += check_online_store_shared(where, settings, replicas,
                                          {n: 6379 for n in redis})
    if settings is not None:
        problems += _check_prometheus(compose, services, app_name, settings.port, routes,
                                      compose_dir, name)
    return problems


def _check_prometheus(compose: Mapping[str, Any], services: Mapping[str, Any], app_name: str,
                      port: int, routes: set[str], compose_dir: Path, name: str) -> list[str]:
    proms = [n for n, s in services.items() if "prometheus" in str(s.get("image", ""))]
    if not proms:
        return [f"{name}: no prometheus service"]
    where = f"{name} service {proms[0]}"
    config_path = None
    for volume in services[proms[0]].get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == "/etc/prometheus/prometheus.yml":
            config_path = (compose_dir / source).resolve()
    if config_path is None or not config_path.is_file():
        return [f"{where}: mounts no readable /etc/prometheus/prometheus.yml ({config_path})"]
    config = yaml.safe_load(config_path.read_text()) or {}
    wanted = f"{app_name}:{port}"
    for job in config.get("scrape_configs") or []:
        targets = {t for sc in job.get("static_configs") or [] for t in sc.get("targets", [])}
        targets |= {f"{n}:{sd.get('port')}" for sd in job.get("dns_sd_configs") or []
                    for n in sd.get("names", [])}
        if wanted in targets:
            return check_route(f"{config_path.name} job {job.get('job_name')}: metrics_path",
                               job.get("metrics_path", "/metrics"), "/metrics", routes)
    return [f"{config_path.name}: no scrape job targets {wanted} (the {app_name} service)"]


# --------------------------------------------------------------------------- Kubernetes

def _obj(doc: Mapping[str, Any]) -> str:
    return f"{doc.get('__file__', '?')} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    return None


def _probe(container: Mapping[str, Any], kind: str) -> tuple[str | None, Any]:
    get = (container.get(kind) or {}).get("httpGet") or {}
    return get.get("path"), get.get("port")


def check_kubernetes(docs: list[dict[str, Any]], routes: set[str]) -> list[str]:
    problems: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for field in ("apiVersion", "kind"):
            if not doc.get(field):
                problems.append(f"{_obj(doc)}: no {field}")
        if "namespace" in (doc.get("metadata") or {}):
            problems.append(f"{_obj(doc)}: sets metadata.namespace; keep manifests "
                            "namespace-agnostic (kubectl -n)")
        by_kind.setdefault(str(doc.get("kind")), []).append(doc)

    config_maps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    for cm in config_maps.values():
        for key, value in (cm.get("data") or {}).items():
            if not isinstance(value, str):
                problems.append(f"{_obj(cm)}: data.{key} is {type(value).__name__}; "
                                "ConfigMap values must be quoted strings")
            if key == ADMIN_KEY_ENV:
                problems.append(f"{_obj(cm)}: {ADMIN_KEY_ENV} in a ConfigMap; it comes from "
                                "a Secret (secretKeyRef)")
    services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
    service_ports = {n: (s["spec"]["ports"][0]["port"] if s["spec"].get("ports") else None)
                     for n, s in services.items()}
    claims = {d["metadata"]["name"] for d in by_kind.get("PersistentVolumeClaim", [])}

    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    serving: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for wl in workloads:
        pod = wl["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        volumes |= {t["metadata"]["name"]: t for t in wl["spec"].get("volumeClaimTemplates", [])}
        for vol in volumes.values():
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None and claim not in claims:
                problems.append(f"{_obj(wl)}: volume claim {claim!r} is not defined here")
        for c in pod.get("containers") or []:
            where = f"{_obj(wl)} container {c.get('name')}"
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if not (res.get(part) or {}).get(resource):
                        problems.append(f"{where}: resources.{part}.{resource} not set")
            for mount in c.get("volumeMounts") or []:
                if mount["name"] not in volumes:
                    problems.append(f"{where}: volumeMount {mount['name']!r} has no volume")
            if argv_of(c)[:1] == ["serve"]:
                serving.append((wl, c))
    if len(serving) != 1:
        return problems + [f"k8s: expected one container running 'newsdesk serve', "
                           f"found {len(serving)}"]
    deployment, container = serving[0]
    where = f"{_obj(deployment)} container {container.get('name')}"
    if deployment["kind"] != "Deployment":
        problems.append(f"{where}: runs in a {deployment['kind']}, expected a Deployment")

    env: dict[str, str] = {}
    origins: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        if ref is not None:
            if ref not in config_maps:
                problems.append(f"{where}: envFrom ConfigMap {ref!r} is not defined here")
            else:
                data = config_maps[ref].get("data") or {}
                env.update({k: str(v) for k, v in data.items()})
                origins.update({k: _obj(config_maps[ref]) for k in data})
        if "secretRef" in source:
            problems.append(f"{where}: envFrom secretRef; name the secret keys one by one")
    secret_envs: set[str] = set()
    for item in container.get("env") or []:
        origins.pop(item["name"], None)  # env wins over envFrom
        value_from = item.get("valueFrom") or {}
        if "secretKeyRef" in value_from:
            secret_envs.add(item["name"])
            env[item["name"]] = SECRET_PLACEHOLDER
        elif "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            env[item["name"]] = ""
    if ADMIN_KEY_ENV not in secret_envs:
        problems.append(f"{where}: {ADMIN_KEY_ENV} must come from a Secret (valueFrom."
                        "secretKeyRef)")

    ports = [int(p["containerPort"]) for p in container.get("ports") or []]
    if len(ports) != 1:
        problems.append(f"{where}: container ports {ports}; expected exactly one")
    found, settings = check_container(
        Container(where, argv_of(container), env, ports[0] if len(ports) == 1 else None,
                  origins))
    problems += found
    replicas = int(deployment["spec"].get("replicas", 1))
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        replicas = max(replicas, int(hpa["spec"].get("minReplicas", 1)))
    problems += check_online_store_shared(where, settings, replicas, service_ports)

    for kind, expected in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                           ("startupProbe", "/healthz")):
        if kind not in container:
            if kind != "startupProbe":
                problems.append(f"{where}: no {kind}")
            continue
        path, port = _probe(container, kind)
        problems += check_route(f"{where} {kind}", path, expected, routes)
        resolved = _resolve_port(port, container)
        if settings is not None and resolved != settings.port:
            problems.append(f"{where} {kind}: port {port!r} -> {resolved}, serve --port is "
                            f"{settings.port}")

    pod_labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    selecting = [s for s in services.values() if s["spec"].get("selector") and
                 all(pod_labels.get(k) == v for k, v in s["spec"]["selector"].items())]
    if not selecting:
        problems.append(f"{where}: no Service selects the pods (labels {pod_labels})")
    for svc in selecting:
        for p in svc["spec"].get("ports") or []:
            target = _resolve_port(p.get("targetPort", p.get("port")), container)
            if settings is not None and target != settings.port:
                problems.append(f"{_obj(svc)}: targetPort {p.get('targetPort')!r} -> {target}, "
                                f"serve --port is {settings.port}")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    if "prometheus.io/path" in annotations:
        problems += check_route(f"{where} annotation prometheus.io/path",
                                annotations["prometheus.io/path"], "/metrics", routes)
    if settings is not None and "prometheus.io/port" in annotations and \
            int(annotations["prometheus.io/port"]) != settings.port:
        problems.append(f"{where}: annotation prometheus.io/port "
                        f"{annotations['prometheus.io/port']} != --port {settings.port}")

    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if not hpas:
        problems.append("k8s: no HorizontalPodAutoscaler")
    for hpa in hpas:
        ref = hpa["spec"].get("scaleTargetRef") or {}
        if (ref.get("kind"), ref.get("name")) != ("Deployment", deployment["metadata"]["name"]):
            problems.append(f"{_obj(hpa)}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} "
                            f"is not Deployment/{deployment['metadata']['name']}")
        if int(hpa["spec"].get("minReplicas", 1)) > int(hpa["spec"]["maxReplicas"]):
            problems.append(f"{_obj(hpa)}: minReplicas > maxReplicas")
    return problems


def argv_of(container: Mapping[str, Any]) -> list[str]:
    argv = [str(a) for a in (container.get("command") or [])] + \
        [str(a) for a in (container.get("args") or [])]
    return argv[1:] if argv[:1] == ["newsdesk"] else argv
