"""Two trainer containers on a podman network train image-classification as 2 workers, each
finding the other by its container name in TF_CONFIG, as the Indexed Job's pods do by DNS."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.containers.test_trainer_image import RECORDIO, Pod, recordio_data
from tests.multi_worker import FINGERPRINT


@pytest.fixture
def network(podman):
    """A network of its own with name resolution between containers and no way out."""
    name = f"vision-workers-{uuid.uuid4().hex[:8]}"
    subprocess.run([podman.tool, "network", "create", "--internal", name], check=True)
    yield name
    subprocess.run([podman.tool, "network", "rm", "-f", name], capture_output=True)


def test_two_containers_train_one_model(podman, network, tmp_path):
    data, hp = recordio_data(tmp_path, per_class=8, epochs="2")
    pod = Pod(podman, tmp_path, data, "image-classification")
    names = [f"{network}-w{i}" for i in range(2)]
    hosts = [f"{name}:2222" for name in names]
    processes, logs = [], []
    for index, name in enumerate(names):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        command = pod.command(
            "train",
            RECORDIO,
            hp,
            env={"TF_CONFIG": json.dumps(config)},
            network=network,
            name=name,
        )
        logs.append(tmp_path / f"worker-{index}.log")
        with logs[-1].open("w") as sink:
            processes.append(subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=600) for p in processes]
    finally:
        for name in names:
            subprocess.run([podman.tool, "rm", "-f", name], capture_output=True)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], [t[-3000:] for t in texts]
    fingerprints = [FINGERPRINT.findall(t)[-1] for t in texts]
    assert fingerprints[0] == fingerprints[1]  # one model, trained in step
    assert (pod.out / "train/model.tar.gz").is_file()  # the chief's upload
    assert "the chief writes the outputs" in texts[1]
    assert json.loads((pod.out / "train/summary.json").read_text())["status"] == "succeeded"
