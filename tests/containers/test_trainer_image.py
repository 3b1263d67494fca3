"""The trainer image runs each algorithm's train, evaluate and transform as the pod would
(`python -m tasks.job` with the pod's arguments, hardened), on tiny generated data."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
import uuid
from pathlib import Path

from operators.runners.base import ContainerStep
from tasks.data.synthetic import make_scenes_dataset, make_shapes_dataset
from tests.conftest import _make_ml_root
from tests.containers.conftest import ROOT, TRAINER, writable
from tests.serving import get, post
from tests.tasks.algorithms.semantic_segmentation.conftest import SMALL

TINY_IC = {"num_layers": "20", "image_shape": "3,16,16", "epochs": "1", "mini_batch_size": "8"}
# Made inside the image (TensorFlow is only there): the tests' tiny feature vector module.
HUB_MODULE = (
    "import sys; from pathlib import Path;"
    "from tests.tasks.algorithms.image_classification_tf.hub_modules import save_feature_vector;"
    "from tasks.algorithms.image_classification_tf.hub.trust import module_digest;"
    "print(module_digest(save_feature_vector(Path(sys.argv[1]))))"
)


MODEL_KEY = "VISION_PIPELINES_MODEL_KEY"
RECORDIO = {"train": "/data/train", "validation": "/data/validation"}
"""image-classification's training channels as the pods see them (`recordio_data`)."""


def recordio_data(root: Path, per_class: int, **hyperparameters: str) -> tuple[Path, dict]:
    """`root/data` with generated images in `predict/` and their RecordIO `train/` and
    `validation/` channels; the training hyperparameters (TINY_IC, the derived counts,
    `hyperparameters`)."""
    data = root / "data"
    images = make_shapes_dataset(data / "predict", per_class=per_class, size=16)
    prepared = _make_ml_root(root / "prepared", images, {**TINY_IC, **hyperparameters})
    for channel in RECORDIO:
        prepared.channel(channel).rename(data / channel)
    return data, json.loads(prepared.hyperparameters_path.read_text())


class Pod:
    """One algorithm's steps as pods: /data holds the inputs (read-only), /out is the output
    prefix, each step gets an /opt/ml volume of its own."""

    def __init__(self, podman, root: Path, data: Path, algorithm: str, env: dict | None = None):
        self.podman, self.root, self.data = podman, root, data
        # The deployment's model key, which pods read from a Secret: evaluate and transform
        # load only archives signed with it (a pod's own generated key would die with it).
        self.algorithm, self.env = algorithm, {MODEL_KEY: uuid.uuid4().hex, **(env or {})}
        self.out = writable(root / "out")

    def command(self, step: str, channels: dict[str, str], hp: dict | None = None, **options):
        """The pod's `python -m tasks.job` for `step`, on a fresh /opt/ml volume."""
        ml = writable(self.root / f"ml-{step}-{uuid.uuid4().hex[:6]}")
        spec = ContainerStep(
            step=step,
            algorithm=self.algorithm,
            channels={name: f"file://{path}" for name, path in channels.items()},
            output_uri=f"file:///out/{step}",
            hyperparameters=hp or {},
        )
        return self.podman.command(
            TRAINER,
            "python",
            "-m",
            "tasks.job",
            *spec.arguments("/opt/ml"),
            volumes={self.data: "/data:ro", self.out: "/out", ml: "/opt/ml"},
            env={**self.env, **options.pop("env", {})},
            **options,
        )

    def run(self, step: str, channels: dict[str, str], hp: dict | None = None):
        command = self.command(step, channels, hp)
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    def steps(self, train: dict[str, str], evaluate: dict[str, str], hp: dict) -> None:
        """train, then evaluate and transform of the model it wrote; each must exit 0."""
        model = {"model": "/out/train/model.tar.gz"}
        for step, channels, values in (
            ("train", train, hp),
            ("evaluate", {**model, **evaluate}, None),
            ("transform", {**model, "data": "/data/predict"}, None),
        ):
            ok(self.run(step, channels, values))
        for step in ("train", "evaluate", "transform"):
            summary = json.loads((self.out / step / "summary.json").read_text())
            assert summary["status"] == "succeeded", (step, summary)
        # Written by the pod's user through the mounted volume, nothing as root.
        assert {p.stat().st_uid for p in self.out.rglob("*")} == {1000}


def ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])


def predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def image_names(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in (".jpg", ".png")
    )


def test_image_classification(podman, tmp_path):
    data, hp = recordio_data(tmp_path, per_class=6)
    images = data / "predict"
    pod = Pod(podman, tmp_path, data, "image-classification")
    pod.steps(RECORDIO, {"validation": RECORDIO["validation"]}, hp)
    evaluation = json.loads((pod.out / "evaluate/evaluation.json").read_text())
    assert evaluation["samples"] == len(image_names(images)) - int(hp["num_training_samples"])
    rows = predictions(pod.out / "transform/predictions.jsonl")
    assert [r["source-ref"] for r in rows] == image_names(images)
    assert all(math.isclose(sum(r["prediction"]), 1.0, abs_tol=1e-4) for r in rows)

    # `serve` as the image's command: the hosting contract on port 8080, hardened as a pod.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    name = f"vision-serve-{uuid.uuid4().hex[:8]}"
    command = podman.command(
        TRAINER,
        "serve",
        volumes={pod.out / "train": "/opt/ml/model:ro"},
        env=pod.env,
        network="bridge",
        ports={port: 8080},
        name=name,
    )
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while get(f"http://127.0.0.1:{port}/ping") != 200:
            assert server.poll() is None, server.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the served image did not answer /ping"
            time.sleep(0.5)
        first = rows[0]
        image = (images / first["source-ref"]).read_bytes()
        status, kind, body = post(f"http://127.0.0.1:{port}", image, "image/jpeg")
        assert (status, kind) == (200, "application/json")
        assert all(
            math.isclose(a, b, abs_tol=1e-5)
            for a, b in zip(json.loads(body), first["prediction"], strict=True)
        )
    finally:
        subprocess.run([podman.tool, "stop", "-t", "5", name], capture_output=True)
        server.wait(timeout=60)


def test_image_classification_tf(podman, tmp_path):
    data = writable(tmp_path / "data")
    images = make_shapes_dataset(data / "predict", per_class=4, size=32)
    made = podman.run(
        TRAINER,
        "python",
        "-c",
        HUB_MODULE,
        "/data/module",
        volumes={data: "/data", ROOT / "tests": "/opt/vision-pipelines/tests:ro"},
    )
    ok(made)
    digest = made.stdout.strip().splitlines()[-1]
    pod = Pod(
        podman,
        tmp_path,
        data,
        "image-classification-tf",
        env={"VISION_PIPELINES_TRUSTED_MODULES": digest},
    )
    pod.steps(
        {"training": "/data/predict", "model": "/data/module"},
        {"validation": "/data/predict"},
        {"epochs": "1", "batch_size": "8"},
    )
    rows = predictions(pod.out / "transform/predictions.jsonl")
    assert [r["source-ref"] for r in rows] == image_names(images)


def test_semantic_segmentation(podman, tmp_path):
    data = make_scenes_dataset(tmp_path / "data", train=6, validation=3, size=(40, 30))
    (data / "predict").symlink_to("validation")
    pod = Pod(podman, tmp_path, data, "semantic-segmentation")
    channels = ("train", "train_annotation", "validation", "validation_annotation")
    pod.steps(
        {name: f"/data/{name}" for name in channels},
        {"validation": "/data/validation", "validation_annotation": "/data/validation_annotation"},
        SMALL,
    )
    evaluation = json.loads((pod.out / "evaluate/evaluation.json").read_text())
    assert 0 <= evaluation["mIoU"] <= 1, evaluation
    rows = predictions(pod.out / "transform/predictions.jsonl")
    assert [r["source-ref"] for r in rows] == image_names(data / "validation")
    assert len(list((pod.out / "transform").rglob("*.png"))) >= len(rows)  # one mask each


def test_a_bad_hyperparameter_exits_2_with_the_failure_written(podman, tmp_path):
    data, hp = recordio_data(tmp_path, per_class=2, epochs="0")
    pod = Pod(podman, tmp_path, data, "image-classification")
    done = pod.run("train", RECORDIO, hp)
    assert done.returncode == 2, done.stderr[-2000:]
    failure = (pod.out / "train/failure").read_text()
    assert "hyperparameter 'epochs'" in failure and "'0'" in failure, failure
    assert "Traceback" not in done.stderr


def _wait_for(path: Path, text: str, process: subprocess.Popen, seconds: float) -> None:
    """Until `text` is in the log file `path` (the process must still be running)."""
    deadline = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        assert process.poll() is None, path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} within {seconds} s"
        time.sleep(0.5)


def test_sigterm_ends_the_step_as_a_recorded_failure_within_the_grace_period(podman, tmp_path):
    """What the kubelet does to a deleted pod: SIGTERM, then SIGKILL after the grace period
    (30 s by default). The step must end first, its failure uploaded."""
    data, hp = recordio_data(tmp_path, per_class=6, epochs="500")
    pod = Pod(podman, tmp_path, data, "image-classification")
    name = f"vision-sigterm-{uuid.uuid4().hex[:8]}"
    command = pod.command("train", RECORDIO, hp, name=name)
    log = tmp_path / "log"
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_for(log, "epoch 2/500", process, 300)
            stopped = time.monotonic()
            subprocess.run([podman.tool, "kill", "--signal", "TERM", name], check=True)
            code = process.wait(timeout=60)
        finally:
            subprocess.run([podman.tool, "rm", "-f", name], capture_output=True)
    assert time.monotonic() - stopped < 30, "not ended within the default grace period"
    assert code not in (0, 137), log.read_text()[-2000:]  # 137: SIGKILL, nothing recorded
    assert "stopped by SIGTERM" in (pod.out / "train/failure").read_text()
    assert json.loads((pod.out / "train/summary.json").read_text())["status"] == "failed"


def test_an_ml_root_the_pod_user_cannot_write_is_named_in_one_sentence(podman, tmp_path):
    """`podman run -v DIR:/opt/ml` of a folder only root may write: exit 2 and what to do."""
    images = make_shapes_dataset(tmp_path / "images", per_class=2, size=16)
    ml = _make_ml_root(tmp_path / "ml", images, TINY_IC)  # root's, mode 755
    done = podman.run(
        TRAINER,
        "python",
        "-m",
        "tasks.train",
        "--algorithm",
        "image-classification",
        "--ml-root",
        "/opt/ml",
        volumes={ml.root: "/opt/ml"},
        env={MODEL_KEY: uuid.uuid4().hex},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (
        "FAILED: /opt/ml/model: cannot write there (Permission denied); the ml-root's model/ "
        "and output/ must be writable by the user this step runs as (uid 1000, gid 1000): for "
        "a container, chown the mounted folder to that user (podman: mount it with `:U`) or "
        "run with its owner's --user"
    )


def test_a_container_without_the_deployment_key_refuses_to_start(podman, tmp_path):
    """Issue 43: a trainer container run without the deployment key signed with a key of its
    own, and every model it trained was refused later. Now: exit 2 and what to give it."""
    images = make_shapes_dataset(tmp_path / "images", per_class=2, size=16)
    ml = _make_ml_root(tmp_path / "ml", images, TINY_IC)
    done = podman.run(
        TRAINER, "python", "-m", "tasks.train", "--algorithm", "image-classification",
        "--ml-root", "/opt/ml", volumes={ml.root: "/opt/ml:U"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().startswith(
        f"FAILED: this step has no model-signing key ({MODEL_KEY} is not set and "
    ), done.stderr[-2000:]
    assert not (ml.root / "model" / "model.tar.gz").exists()
