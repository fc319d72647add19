"""The deployment files, checked by parsing (no Docker engine or cluster here).

They must name only settings jiesu reads, commands it accepts, and route every path each
service serves to that service.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jiesu.cli import build_parser
from jiesu.config import Settings
from jiesu.runtime import load_spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = {f"JIESU_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def accepts(args: list[str]) -> bool:
    try:
        build_parser().parse_args(args)
        return True
    except SystemExit:
        return False


def test_compose_runs_kafka_in_kraft_mode_with_postgres_and_the_three_services():
    services = compose()["services"]
    assert {"postgres", "kafka", "migrate", "topics", "intake", "router", "tracker", "proxy"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka
    assert "ZOOKEEPER" not in str(kafka).upper()
    for name in ("intake", "router", "tracker"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_uses_only_settings_jiesu_reads_and_commands_it_accepts():
    services = compose()["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        jiesu_vars = {k for k in env if k.startswith("JIESU_")}
        assert jiesu_vars <= SETTINGS, f"{name}: unknown {jiesu_vars - SETTINGS}"
        if service.get("image", "").startswith("jiesu"):
            assert accepts(service["command"]), f"{name}: {service['command']}"
    assert "JIESU_BROKER_URL" in services["intake"]["environment"]


def test_dockerfile_runs_the_jiesu_command():
    text = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["jiesu"]' in text and "constraints.txt" in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    assert accepts(yaml.safe_load(cmd))


def test_kubernetes_manifests_have_deployments_jobs_and_lag_based_scaling():
    docs = k8s()
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    for component in ("intake", "router", "tracker"):
        assert ("Deployment", component) in kinds and ("Service", component) in kinds
    assert ("Job", "jiesu-migrate") in kinds and ("Job", "jiesu-topics") in kinds
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    assert set(scaled) == {"router", "tracker"}
    for name, obj in scaled.items():
        assert obj["spec"]["triggers"][0]["metadata"]["consumerGroup"] == f"jiesu-{name}"
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    partitions = int(config["data"]["JIESU_TOPIC_PARTITIONS"])
    assert all(o["spec"]["maxReplicaCount"] <= partitions for o in scaled.values())


def test_kubernetes_manifests_use_only_known_settings_commands_and_secret_references():
    for doc in k8s():
        if doc["kind"] == "ConfigMap":
            assert set(doc["data"]) <= SETTINGS
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"]:
                assert accepts(container["args"]), container["args"]
                refs = {next(iter(r)) for r in container["envFrom"]}
                assert "configMapRef" in refs
                if doc["kind"] == "Deployment":
                    assert "secretRef" in refs
                    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def _nginx_locations() -> list[tuple[str, str]]:
    text = (DEPLOY / "nginx.conf").read_text()
    return re.findall(r"location\s+(/\S*)\s*\{\s*proxy_pass http://(\w+);", text)


def _ingress_paths() -> list[tuple[str, str]]:
    ingress = next(d for d in k8s() if d["kind"] == "Ingress")
    return [(p["path"], p["backend"]["service"]["name"]) for p in ingress["spec"]["rules"][0]["http"]["paths"]]


def _route(locations: list[tuple[str, str]], path: str) -> str:
    matches = [(prefix, upstream) for prefix, upstream in locations if path.startswith(prefix)]
    return max(matches, key=lambda m: len(m[0]))[1]


@pytest.mark.parametrize("routes", [_nginx_locations, _ingress_paths], ids=["nginx", "ingress"])
def test_every_path_a_service_serves_reaches_that_service(routes):
    locations = routes()
    for service in ("intake", "router", "tracker"):
        for router in load_spec(service).routers:
            for route in router.routes:
                path = re.sub(r"\{[^}]+\}", "x", route.path)
                assert _route(locations, path) == service, f"{path} should reach {service}"


def test_readme_production_example_names_only_real_settings():
    readme = (DEPLOY.parent / "README.md").read_text()
    named = set(re.findall(r"\b(JIESU_[A-Z_]+)\b", readme))
    unknown = {n for n in named if n not in SETTINGS and not n.startswith(("JIESU_TEST_", "JIESU_REQUIRE_ALL",
                                                                                "JIESU_CHROMIUM", "JIESU_SHARED_DATA"))}
    # Names written as a pattern (JIESU_{INTAKE,…}_DATABASE_URL) are expanded by the reader, not here.
    assert {n for n in unknown if not n.endswith("_")} == set()


def _served_paths(service: str) -> list[str]:
    paths = [f"/static/{service}/"]  # each service's own page assets (ServiceSpec.static_dir)
    for router in load_spec(service).routers:
        paths += [re.sub(r"\{[^}]+\}", "x", route.path) for route in router.routes]
    return paths


@pytest.mark.parametrize("routes", [_nginx_locations, _ingress_paths], ids=["nginx", "ingress"])
def test_every_proxy_prefix_leads_to_something_its_service_serves(routes):
    """A prefix that matches no route of its service is a dead rule (one sent /mailbox to intake, which has none)."""
    for prefix, service in routes():
        if prefix != "/":
            assert any(p.startswith(prefix) for p in _served_paths(service)), f"{prefix} → {service} serves nothing"


def _attachments_path() -> str:
    data_dir = re.search(r"JIESU_DATA_DIR=(\S+)", (DEPLOY / "Dockerfile").read_text()).group(1)
    return f"{data_dir}/attachments"  # files.attachments_dir's default, JIESU_ATTACHMENTS_DIR being unset


def test_intake_keeps_attachments_on_a_volume_every_replica_shares():
    path = _attachments_path()
    assert re.search(rf"mkdir -p {path} && chown -R jiesu", (DEPLOY / "Dockerfile").read_text())
    services = compose()
    assert "JIESU_ATTACHMENTS_DIR" not in services["x-jiesu-env"]
    mounts = dict(v.split(":", 1)[::-1] for v in services["services"]["intake"]["volumes"])
    assert mounts[path] in services["volumes"]  # a named volume, not the container's own layer
    docs = k8s()
    intake = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "intake")
    pod = intake["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == path)
    claim = next(v for v in pod["volumes"] if v["name"] == mount["name"])["persistentVolumeClaim"]["claimName"]
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim)
    assert intake["spec"]["replicas"] == 1 or "ReadWriteMany" in pvc["spec"]["accessModes"]
    assert pod["securityContext"]["fsGroup"] == 10001
    assert "--uid 10001" in (DEPLOY / "Dockerfile").read_text()
