"""Static checks of the container and cluster files (no Docker engine or cluster runs here).

Dockerfile: hadolint, the pin files it installs versus the Makefile's, non-root user, tini + entrypoint.
docker-compose.yml: the vendored Compose Specification schema, pinned images, documented env vars only.
deploy/k8s: kubernetes-validate (strict) for core kinds and each spot variant, the PaddleJob against the
schema in deploy/k8s/schemas, and exit-code rules that match app/errors.py.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv

from app.config.load import ENV_VARS
from app.errors import (
    EXIT_CHECKPOINT,
    EXIT_FAILURE,
    EXIT_PEER_LOST,
    EXIT_PREEMPTED,
    EXIT_STORAGE,
    EXIT_TASK,
    EXIT_USAGE,
)

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy/k8s"
K8S_VERSION = "1.31.0"  # podFailurePolicy is GA from 1.31
HADOLINT = Path(sys.executable).with_name("hadolint")
ENTRYPOINT_VARS = {"WARMSTART_CONFIG", "WARMSTART_COMMAND", "WARMSTART_ARGS"}


# -- Dockerfile ---------------------------------------------------------------------------------------
def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


DOCKERFILE = _instructions((ROOT / "Dockerfile").read_text())


def _all(name: str) -> list[str]:
    return [args for word, args in DOCKERFILE if word == name]


def _hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(path)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip


def test_hadolint_passes_the_dockerfile_and_flags_a_sloppy_one(tmp_path):
    ok = _hadolint(ROOT / "Dockerfile")
    assert (ok.returncode, ok.stdout) == (0, ""), ok.stdout + ok.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install boto3\nENTRYPOINT warmstart\n")
    found = set(re.findall(r"\b(DL\d{4})\b", _hadolint(bad).stdout))
    assert {"DL3007", "DL3003", "DL3013", "DL3025"} <= found  # latest tag, cd, unpinned pip, shell form


def _make_var(name: str) -> list[str]:
    match = re.search(rf"^{name}\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"Makefile has no {name} :="
    return match.group(1).split()


def test_image_installs_the_pin_files_make_and_ci_install_minus_dev_tools():
    commands = [shlex.split(c) for a in _all("RUN") for c in a.split("&&")]
    installs = [c for c in commands if c[:2] == ["pip", "install"]]
    used = {(c[i], c[i + 1]) for c in installs for i in range(len(c) - 1) if c[i] in ("-r", "-c")}
    # base-gpu.txt is requirements/base.txt without the CPU paddlepaddle line (made in the same RUN).
    derive = next(a for a in _all("RUN") if "base-gpu.txt" in a)
    assert "grep -v '^paddlepaddle==' requirements/base.txt > base-gpu.txt" in derive
    build_only = {("-r", "build.txt")}  # setuptools/wheel lines of dev.txt, to build the app's own wheel
    as_files = {(f, "requirements/base.txt" if p == "base-gpu.txt" else p) for f, p in used} - build_only
    make = {("-r", p) for p in _make_var("REQS")} | {("-c", p) for p in _make_var("LOCK")}
    assert as_files == make - {("-r", "requirements/dev.txt")}
    assert as_files == {("-r", "requirements/base.txt"), ("-r", "requirements/tasks.txt"),
                        ("-c", "requirements/constraints.txt")}  # fmt: skip
    assert "grep -E '^(setuptools|wheel)==' requirements/dev.txt > build.txt" in derive


def test_gpu_paddle_is_the_cuda_11_8_build_of_the_pinned_version():
    cpu_pin = re.search(r"^paddlepaddle==(\S+)$", (ROOT / "requirements/base.txt").read_text(), re.M)
    args = dict(a.split("=", 1) for a in _all("ARG") if "=" in a)
    assert args["PADDLE_GPU_VERSION"] == cpu_pin.group(1) == "2.6.2"
    assert args["PADDLE_INDEX_URL"] == "https://www.paddlepaddle.org.cn/packages/stable/cu118/"
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:11.8.0-cudnn8-runtime-")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"])
    # Bases are build args (pinnable by digest), declared before the first FROM.
    assert [a for a in _all("FROM")] == ["${CUDA_IMAGE} AS cuda", "${PYTHON_IMAGE} AS runtime"]
    first_from = next(i for i, (w, _) in enumerate(DOCKERFILE) if w == "FROM")
    assert {a.split("=")[0] for w, a in DOCKERFILE[:first_from] if w == "ARG"} == {
        "PYTHON_IMAGE",
        "CUDA_IMAGE",
    }


def test_image_runs_as_non_root_through_tini_and_the_entrypoint():
    users = _all("USER")
    assert users[-1] == "10001:10001" and [w for w, _ in DOCKERFILE][-1] == "ENTRYPOINT"
    last_user = max(i for i, (w, _) in enumerate(DOCKERFILE) if w == "USER")
    assert all(w != "RUN" for w, _ in DOCKERFILE[last_user:])  # nothing runs as root after the switch
    assert any("useradd --uid 10001 --gid 10001" in a for a in _all("RUN"))
    assert json.loads(_all("ENTRYPOINT")[-1]) == ["/usr/bin/tini", "--", "/app/entrypoint"]
    apt = next(a for a in _all("RUN") if "apt-get install" in a).split()
    assert {"tini", "fonts-dejavu-core"} <= set(apt)
    assert "COPY --chmod=755 entrypoint /app/entrypoint" in [f"COPY {a}" for a in _all("COPY")]


def test_dockerignore_admits_exactly_what_the_dockerfile_copies():
    lines = [x for x in (ROOT / ".dockerignore").read_text().splitlines() if x and not x.startswith("#")]
    assert lines[0] == "*"  # allow-list: .venv, runs/, .git, tests and credentials stay out
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    sources = set()
    for args in _all("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        if "--from=" not in args:
            sources |= {p.rstrip("/") for p in parts[:-1]}
    assert sources == allowed


# -- docker-compose.yml -------------------------------------------------------------------------------
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _compose_errors(data: dict) -> list[str]:
    schema = json.loads((ROOT / "deploy/schemas/compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(data)]


def test_compose_file_matches_the_compose_specification_schema():
    assert _compose_errors(COMPOSE) == []
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["trainer"]["enviroment"] = {"WARMSTART_SEED": "1"}
    assert any("enviroment" in e for e in _compose_errors(broken))


def test_compose_pins_minio_creates_the_bucket_and_orders_the_start():
    svc = COMPOSE["services"]
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", svc["minio"]["image"])
    assert re.fullmatch(r"minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", svc["createbucket"]["image"])
    assert svc["createbucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert "mc mb --ignore-existing local/warmstart" in svc["createbucket"]["command"][0]
    for name in ("trainer", "trainer-gpu"):
        assert svc[name]["depends_on"] == {"createbucket": {"condition": "service_completed_successfully"}}
        bucket = svc[name]["environment"]["WARMSTART_CHECKPOINT_URI"].split("/")[2]
        assert bucket == "warmstart"
    gpu = svc["trainer-gpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in svc["trainer"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    ]
    # Two trainers never share a checkpoint root.
    assert (
        gpu["environment"]["WARMSTART_CHECKPOINT_URI"]
        != svc["trainer"]["environment"]["WARMSTART_CHECKPOINT_URI"]
    )


def _seconds(duration: str) -> int:
    return int(re.fullmatch(r"(\d+)s", duration).group(1))


@pytest.mark.parametrize("name", ["trainer", "trainer-gpu"])
def test_compose_trainer_uses_only_documented_env_vars_and_no_inline_credentials(name):
    svc = COMPOSE["services"][name]
    env = svc["environment"]
    assert set(env) <= set(ENV_VARS) | ENTRYPOINT_VARS, set(env) - set(ENV_VARS) - ENTRYPOINT_VARS
    assert svc["env_file"] == ["deploy/compose/credentials.env"]
    assert _seconds(svc["stop_grace_period"]) >= int(env["WARMSTART_GRACE_SECONDS"]) + 5
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"AWS_SECRET_ACCESS_KEY|MINIO_ROOT_PASSWORD\s*[:=]", text)
    example = (ROOT / "deploy/compose/credentials.env.example").read_text()
    keys = {x.split("=")[0] for x in example.splitlines() if "=" in x and not x.startswith("#")}
    assert keys == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "AWS_REGION"}  # fmt: skip
    assert "deploy/compose/credentials.env" in (ROOT / ".gitignore").read_text().splitlines()


# -- Kubernetes ---------------------------------------------------------------------------------------
def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


MANIFESTS = sorted(K8S.glob("*.yaml"))
JOB = _docs(K8S / "job.yaml")[0]
PADDLEJOB = _docs(K8S / "paddlejob.yaml")[0]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_validates(path):
    docs = _docs(path)
    assert docs
    for doc in docs:
        if doc["kind"] == "PaddleJob":
            _validate_paddlejob(doc)
        else:
            assert kv.validate(doc, K8S_VERSION, strict=True) == "1.31"


def _validate_paddlejob(doc: dict) -> None:
    schema = json.loads((K8S / "schemas/paddlejob-v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    for spec in doc["spec"]["paddleReplicaSpecs"].values():
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                        "template": spec["template"]}  # fmt: skip
        kv.validate(pod_template, K8S_VERSION, strict=True)


def test_paddlejob_schema_rejects_what_the_operator_would_not_run():
    bad = copy.deepcopy(PADDLEJOB)
    bad["spec"]["paddleReplicaSpecs"]["Worker"]["restartPolicy"] = "OnExitCode"
    with pytest.raises(jsonschema.ValidationError, match="OnExitCode"):
        _validate_paddlejob(bad)
    bad = copy.deepcopy(PADDLEJOB)
    bad["spec"]["paddleReplicaSpecs"]["Workers"] = bad["spec"]["paddleReplicaSpecs"].pop("Worker")
    with pytest.raises(jsonschema.ValidationError, match="Workers"):
        _validate_paddlejob(bad)
    bad = copy.deepcopy(PADDLEJOB)
    bad["spec"]["paddleReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 1
    with pytest.raises(kv.ValidationError):
        _validate_paddlejob(bad)


def _spot_blocks() -> dict[str, dict]:
    text = (K8S / "job.yaml").read_text()
    blocks = {}
    for cloud, body in re.findall(r"# --- spot: (\w+) ---\n(.*?)\n\s*# --- end ---", text, re.S):
        lines = [re.sub(r"^\s*# ?", "", x) for x in body.splitlines()]
        blocks[cloud] = yaml.safe_load("\n".join(x for x in lines if not x.startswith("#")))
    return blocks


def test_spot_variants_for_each_cloud_validate_when_uncommented():
    blocks = _spot_blocks()
    assert set(blocks) == {"aws", "gcp", "alibaba"}
    selectors = {cloud: block["nodeSelector"] for cloud, block in blocks.items()}
    assert selectors["aws"] == {"eks.amazonaws.com/capacityType": "SPOT"}
    assert selectors["gcp"] == {"cloud.google.com/gke-spot": "true"}
    for block in blocks.values():
        job = copy.deepcopy(JOB)
        job["spec"]["template"]["spec"].update(block)
        assert kv.validate(job, K8S_VERSION, strict=True) == "1.31"


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_job_failure_policy_matches_the_trainer_exit_codes():
    spec = JOB["spec"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    by_action = {r["action"]: r["onExitCodes"] for r in rules if "onExitCodes" in r}
    assert by_action["Ignore"]["values"] == [EXIT_PREEMPTED]
    assert by_action["Count"]["values"] == [EXIT_PEER_LOST]  # retried, but a link that keeps failing ends it
    assert set(by_action["FailJob"]["values"]) == {EXIT_USAGE, EXIT_CHECKPOINT, EXIT_TASK}
    assert {r["operator"] for r in by_action.values()} == {"In"}
    # Storage errors may be transient and crashes are bugs: both count against backoffLimit.
    listed = {c for r in by_action.values() for c in r["values"]}
    assert EXIT_STORAGE not in listed and EXIT_FAILURE not in listed
    container = pod["containers"][0]
    assert {r["containerName"] for r in by_action.values()} == {container["name"]}
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True


def test_paddlejob_exit_code_policy_retries_preemption_and_not_user_errors():
    for spec in PADDLEJOB["spec"]["paddleReplicaSpecs"].values():
        assert spec["restartPolicy"] == "ExitCode"
        container = spec["template"]["spec"]["containers"][0]
        assert container["name"] == "paddle"
        assert container["args"][:4] == ["launch", "--nproc-per-node", "1", "--log-dir"]  # keeps 143
    # restartPolicy ExitCode: 1-127 permanent, 128-255 retried.
    assert 128 <= EXIT_PREEMPTED <= 255 and 128 <= EXIT_PEER_LOST <= 255  # both retried
    assert all(1 <= c <= 127 for c in (EXIT_FAILURE, EXIT_USAGE, EXIT_STORAGE, EXIT_CHECKPOINT, EXIT_TASK))


@pytest.mark.parametrize("doc", [JOB, PADDLEJOB], ids=["job", "paddlejob"])
def test_grace_period_leaves_room_for_the_save_and_env_vars_are_documented(doc):
    if doc["kind"] == "Job":
        pods = [doc["spec"]["template"]["spec"]]
    else:
        pods = [s["template"]["spec"] for s in doc["spec"]["paddleReplicaSpecs"].values()]
    for pod in pods:
        container = pod["containers"][0]
        env = _env(container)
        assert set(env) <= set(ENV_VARS) | ENTRYPOINT_VARS
        assert pod["terminationGracePeriodSeconds"] >= int(env["WARMSTART_GRACE_SECONDS"]) + 15
        assert container["envFrom"] == [{"secretRef": {"name": "warmstart-s3"}}]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
