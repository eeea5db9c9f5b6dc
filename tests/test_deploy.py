"""The container and Kubernetes files are valid: manifests against the Kubernetes schemas
(offline, kubernetes-validate), the Containerfile through hadolint, and both agree with the app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sync_core.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy").glob("*.yaml"))


def test_manifests_validate_against_the_kubernetes_schemas():
    assert {m.name for m in MANIFESTS} >= {"deployment.yaml", "service.yaml", "configmap.yaml",
                                          "secret.yaml", "cronjob.yaml"}
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", *map(str, MANIFESTS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(MANIFESTS)


def test_containerfile_passes_hadolint():
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", str(ROOT / "Containerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifests_and_image_agree_with_the_app():
    deployment = (ROOT / "deploy" / "deployment.yaml").read_text()
    assert "replicas: 2" in deployment
    assert "/api/v1/health/ready" in deployment and "/api/v1/health/live" in deployment
    cronjob = (ROOT / "deploy" / "cronjob.yaml").read_text()
    assert '["litemaas-sync", "sync", "--json"]' in cronjob
    containerfile = (ROOT / "Containerfile").read_text()
    assert "USER 10001" in containerfile and "HEALTHCHECK" in containerfile
    known = {s.env for s in SETTINGS}
    configured = {line.split(":")[0].strip() for line in
                  (ROOT / "deploy" / "configmap.yaml").read_text().split("\ndata:")[1].splitlines()
                  if ":" in line}
    secret = {"DATABASE_URL", "LITELLM_API_KEY", "SYNC_API_TOKEN"}
    assert configured | secret <= known
