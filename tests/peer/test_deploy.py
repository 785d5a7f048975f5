"""deploy/: what can be checked without Docker. The image's entrypoint and health check
run as plain processes against a real node; the compose file and Kubernetes manifests
parse and agree with the image on ports, paths and the non-root user."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import yaml

from node.config import Settings
from tests.conftest import REPO
from tests.peer import fakes
from tests.peer.helpers import COORDINATOR, public_pem, write_peers

DEPLOY = REPO / "deploy"


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def _env_of_image() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)\n\n", _dockerfile(), re.S | re.M)
    assert block is not None
    return dict(re.findall(r"(\w+)=(\S+)", block[1]))


def _settings_from_env(env: dict[str, str]) -> Settings:
    """The settings a container gets from `env` (FEDNODE_A__B=v), validated."""
    tree: dict[str, object] = {}
    for name, value in env.items():
        if not name.startswith("FEDNODE_") or name in _ENTRYPOINT_ONLY:
            continue
        *path, leaf = name.removeprefix("FEDNODE_").lower().split("__")
        node = tree
        for part in path:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = yaml.safe_load(value) if value.lstrip().startswith("[") else value
    return Settings(**tree)  # type: ignore[arg-type]


_ENTRYPOINT_ONLY = {"FEDNODE_HOME", "FEDNODE_DATASET", "FEDNODE_INGEST_FILES", "FEDNODE_AGGREGATOR"}


def _health(port: int) -> int:
    env = {**os.environ, "FEDNODE_SERVER__PORT": str(port)}
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")], env=env, timeout=10
    ).returncode


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(DEPLOY / "entrypoint.py")],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _until_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(240):
        if _health(port) == 0:
            return
        assert proc.poll() is None, "entrypoint exited"
        time.sleep(0.25)
    raise AssertionError("never healthy")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(15)


def test_entrypoint_and_healthcheck_run_a_node_and_an_aggregator(tmp_path, cohort, coordinator_key):
    """The image's entrypoint as plain processes: a node (init, ingest, HTTP + gRPC), then
    an aggregator over it (FEDNODE_AGGREGATOR); the health check judges both."""
    http, grpc_port, agg_http = fakes.dead_port(), fakes.dead_port(), fakes.dead_port()
    assert _health(http) == 1  # nothing listening: unhealthy
    (tmp_path / "coordinator.pub").write_text(public_pem(coordinator_key))
    generous = {"FEDNODE_PRIVACY__BUDGET__MAX_LLR": "1e9"}  # budgets are tested elsewhere
    node = _start(
        {
            "FEDNODE_HOME": str(tmp_path / "home"),
            "FEDNODE_NODE__ID": "node",  # the audience of the coordinator's tokens
            "FEDNODE_DATASET": "cohort",
            "FEDNODE_INGEST_FILES": f"{cohort / 'S000.vcf.gz'} {cohort / 'S001.vcf.gz'}",
            "FEDNODE_SERVER__PORT": str(http),
            "FEDNODE_PEER__PORT": str(grpc_port),
            "FEDNODE_PEER__COORDINATORS": json.dumps(
                [{"id": COORDINATOR, "public_key_file": str(tmp_path / "coordinator.pub")}]
            ),
            **generous,
        },
        tmp_path,
    )
    try:
        _until_healthy(http, node)
        assert (tmp_path / "home" / "datasets" / "cohort").is_dir()
        peers = write_peers(tmp_path, coordinator_key, {"node": grpc_port})
        aggregator = _start(
            {
                "FEDNODE_HOME": str(tmp_path / "aggregator"),
                "FEDNODE_SERVER__PORT": str(agg_http),
                "FEDNODE_AGGREGATOR": str(peers),
                **generous,
            },
            tmp_path,
        )
        try:
            _until_healthy(agg_http, aggregator)
            params = "referenceName=1&start=20000000&end=20100000&requestedGranularity=count"
            url = f"http://127.0.0.1:{agg_http}/api/g_variants?{params}"
            with urllib.request.urlopen(url, timeout=10) as reply:
                doc = json.load(reply)
            nodes = doc["info"]["federation"]["nodes"]
            assert [(n["id"], n["status"]) for n in nodes] == [("node", "OK")]
            assert doc["responseSummary"]["exists"] is True
        finally:
            _stop(aggregator)
        assert _health(agg_http) == 1
    finally:
        _stop(node)
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
    nodes = [n for n, s in services.items() if "FEDNODE_INGEST_FILES" in s.get("environment", {})]
    assert len(nodes) == 3
    grpc_port = _env_of_image()["FEDNODE_PEER__PORT"]
    peers = yaml.safe_load((DEPLOY / "peers.compose.yaml").read_text())
    assert sorted(p["address"] for p in peers["peers"]) == sorted(f"{n}:{grpc_port}" for n in nodes)
    for name in ("coordinator", "aggregator"):
        waits = services[name]["depends_on"]
        assert set(waits) == set(nodes)
        assert all(c["condition"] == "service_healthy" for c in waits.values())
    # The aggregator: the image's entrypoint in aggregator mode, on the image's HTTP
    # port, over the same PEERS file, whose coordinator key is where the file says.
    aggregator = services["aggregator"]
    mounts = dict(v.split(":")[:2] for v in aggregator["volumes"])
    peers_path = aggregator["environment"]["FEDNODE_AGGREGATOR"]
    assert mounts["./peers.compose.yaml"] == peers_path
    key_dir = str(Path(peers_path).parent / Path(peers["coordinator"]["private_key"]).parent)
    assert mounts["./keys"] == key_dir
    http = _env_of_image()["FEDNODE_SERVER__PORT"]
    assert aggregator["ports"] == [f"8080:{http}"]
    assert "entrypoint" not in aggregator and "aggregator" in doc["volumes"]
    coordinator_mounts = dict(v.split(":")[:2] for v in services["coordinator"]["volumes"])
    assert coordinator_mounts["./keys"] == key_dir
    for name in nodes:
        env = services[name]["environment"]
        Settings(peer={"coordinators": yaml.safe_load(env["FEDNODE_PEER__COORDINATORS"])})
    for name in [*nodes, "aggregator"]:  # every FEDNODE_ setting is one node/config.py takes
        _settings_from_env(services[name]["environment"])


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
