"""deploy/: what can be checked without Docker. The image's entrypoint and health check
run as plain processes against a real node; the compose file and Kubernetes manifests
parse and agree with the image on ports, paths and the non-root user."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib

import yaml

from node.config import Settings
from tests.conftest import REPO
from tests.peer import fakes

DEPLOY = REPO / "deploy"


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def _env_of_image() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)\n\n", _dockerfile(), re.S | re.M)
    assert block is not None
    return dict(re.findall(r"(\w+)=(\S+)", block[1]))


def _health(port: int) -> int:
    env = {**os.environ, "FEDNODE_SERVER__PORT": str(port)}
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")], env=env, timeout=10
    ).returncode


def test_entrypoint_and_healthcheck_run_a_node(tmp_path, cohort):
    http = fakes.dead_port()
    assert _health(http) == 1  # nothing listening: unhealthy
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FEDNODE_HOME": str(tmp_path / "home"),
        "FEDNODE_DATASET": "cohort",
        "FEDNODE_INGEST_FILES": f"{cohort / 'S000.vcf.gz'} {cohort / 'S001.vcf.gz'}",
        "FEDNODE_SERVER__PORT": str(http),
        "FEDNODE_PEER__PORT": str(fakes.dead_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, str(DEPLOY / "entrypoint.py")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(240):
            if _health(http) == 0:
                break
            assert proc.poll() is None, "entrypoint exited"
            time.sleep(0.25)
        assert _health(http) == 0
        assert (tmp_path / "home" / "datasets" / "cohort").is_dir()
    finally:
        proc.terminate()
        proc.wait(15)
    assert _health(http) == 1


def test_image_runs_as_non_root_with_a_health_check():
    text = _dockerfile()
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user is not None and not user[1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py", text, re.M)
    env = _env_of_image()
    exposed = set(re.search(r"^EXPOSE (.+)$", text, re.M)[1].split())
    assert {env["FEDNODE_SERVER__PORT"], env["FEDNODE_PEER__PORT"]} == exposed
    for source in re.findall(r"^COPY (.+?) \S+$", text, re.M):
        for path in source.split():
            assert (REPO / path).exists(), path


def test_compose_runs_three_nodes_and_a_coordinator_that_can_reach_them():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    nodes = [n for n, s in services.items() if s.get("environment", {}).get("FEDNODE_NODE__ID")]
    assert len(nodes) == 3
    grpc_port = _env_of_image()["FEDNODE_PEER__PORT"]
    peers = yaml.safe_load((DEPLOY / "peers.compose.yaml").read_text())
    assert sorted(p["address"] for p in peers["peers"]) == sorted(f"{n}:{grpc_port}" for n in nodes)
    coordinator = services["coordinator"]
    assert set(coordinator["depends_on"]) == set(nodes)
    assert all(c["condition"] == "service_healthy" for c in coordinator["depends_on"].values())
    for name in nodes:
        env = services[name]["environment"]
        Settings(peer={"coordinators": yaml.safe_load(env["FEDNODE_PEER__COORDINATORS"])})


def test_kubernetes_manifests_reference_the_right_ports_and_paths():
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    config = tomllib.loads(docs["ConfigMap"]["data"]["fednode.toml"])
    settings = Settings(**config)  # the shipped config is valid
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.server.port, "grpc": settings.peer.port}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert spec["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    home = next(e["value"] for e in container["env"] if e["name"] == "FEDNODE_HOME")
    assert mounts["config"] == f"{home}/fednode.toml"
    assert mounts["data"] == f"{home}/{settings.store_uri}"
    key_file = settings.peer.coordinators[0].public_key_file
    assert key_file is not None and key_file.startswith(mounts["keys"] + "/")
    service_ports = {p["targetPort"] for p in docs["Service"]["spec"]["ports"]}
    assert service_ports == set(ports)
    selector = docs["Service"]["spec"]["selector"]
    assert selector.items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
