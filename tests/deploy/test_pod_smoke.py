"""The Kubernetes pod's configuration, run for real without a cluster.

`newsdesk serve` is started with the Deployment's arguments and the environment a pod gets
(the image's ENV, the ConfigMap, the admin key from the Secret) against a real redis-server and
a small trained bundle. Only what a cluster supplies is swapped: the paths of the mounted
volumes, the Redis address, and host and port (tests listen on 127.0.0.1 and a free port). The
probes and the scrape path are then asked what the kubelet and Prometheus would ask.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy import manifest_checks as mc

pytest.importorskip("lightgbm")

from tests.serving.test_bundle_serving import NEWSDESK, Trained, _free_port, trained  # noqa: E402,F401

pytestmark = [pytest.mark.ml, pytest.mark.slow, pytest.mark.redis]


def _with_flags(args: list[str], **values: str) -> list[str]:
    """`args` with the value after each `--flag` replaced; the flag must be there already."""
    out = list(args)
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        assert flag in out, f"the manifest's command has no {flag}"
        out[out.index(flag) + 1] = value
    return out


def _pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The serving Deployment, its container, and the ConfigMap's data."""
    deployment = next(d for d in docs if d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "newsdesk")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    return deployment, container, dict(config)


def test_the_pod_configuration_serves(tmp_path: Path, trained: Trained,  # noqa: F811
                                      redis_server: str) -> None:
    deployment, container, config = _pod(mc.k8s_documents())
    args = mc.argv_of(container)
    stages = mc.parse_dockerfile((mc.DEPLOY_DIR / "docker" / "Dockerfile").read_text())
    image_env: dict[str, str] = {}
    for ins in stages[-1]:
        if ins.keyword == "ENV":
            image_env.update(mc._env_pairs(ins.value))
    image_env.pop("PATH")  # the image's venv; here the test's interpreter
    assert image_env["HF_HUB_OFFLINE"] == "1"

    assert config["NEWSDESK_ONLINE_STORE_URL"].startswith("redis://")
    config["NEWSDESK_ONLINE_STORE_URL"] = redis_server
    secret = mc.SECRET_PLACEHOLDER
    port = _free_port()
    argv = _with_flags(args, host="127.0.0.1", port=str(port), dataset=str(trained.dataset),
                       bundles=str(trained.bundles), state_dir=str(tmp_path / "state"))
    argv += ["--clock-start", trained.clock_start.isoformat()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(mc.ENV_PREFIX)}
    env.update(image_env)
    env.update(config)
    env[mc.ADMIN_KEY_ENV] = secret

    probes = {kind: container[kind]["httpGet"]["path"]
              for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    scrape_path = deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*NEWSDESK, *argv], env=env, stdout=subprocess.DEVNULL,
                                stderr=log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 90
                while True:
                    assert proc.poll() is None, log_path.read_text()[-2000:]
                    try:
                        if client.get(probes["readinessProbe"]).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "not ready in 90 s"
                    time.sleep(0.2)
                ready = client.get(probes["readinessProbe"]).json()
                assert ready["checks"] == {"model": True, "online_store": True,
                                           "event_log": True}
                for kind in ("startupProbe", "livenessProbe"):
                    assert client.get(probes[kind]).status_code == 200, kind
                r = client.post("/v1/recommendations",
                                json={"user_id": trained.users[0], "k": 10})
                assert r.status_code == 200 and len(r.json()["items"]) == 10
                # the admin key reached the server from the Secret's env var
                admin = client.get("/v1/admin/bundles", headers={"X-API-Key": secret})
                assert admin.status_code == 200
                assert admin.json()["active"] == trained.version
                assert client.get("/v1/admin/bundles").status_code == 401
                assert "newsdesk_http_request_duration_seconds" in client.get(scrape_path).text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), log_path.read_text()[-2000:]
