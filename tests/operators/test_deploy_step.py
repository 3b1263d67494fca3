"""The deploy step: the champion's SavedModel in TensorFlow Serving's layout, then served by the
runner (local: the command in the log; kubernetes: a KServe InferenceService checked against
KServe's schema, created or replaced), again after a rollback."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from operators.deployers.base import Deployment
from operators.deployers.kubernetes import inference_service_of
from operators.kubernetes_pods import KubernetesSettings
from operators.lifecycle import DeployOperator
from tasks.algorithms import get_algorithm
from tasks.artifact import SAVED_MODEL, ModelManifest, write_artifact
from tasks.errors import InputError
from tasks.lifecycle.champion import rollback
from tasks.serving.kserve import check_inference_service
from tests.s3 import BUCKET
from tests.tasks.test_lifecycle import promote_run

PIPELINE = "image_classification"


def _model(tmp_path, name: str) -> str:
    """A signed model.tar.gz whose SavedModel files say which model they are."""
    saved = tmp_path / name / SAVED_MODEL
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(f"graph of {name}".encode())
    (saved / "variables" / "variables.index").write_bytes(name.encode())
    manifest = ModelManifest(
        algorithm="image-classification",
        architecture={"num_layers": 20, "image_shape": (3, 16, 16), "num_classes": 2},
        class_names=["a", "b"],
        hyperparameters={},
    )
    tar = tmp_path / name / "model.tar.gz"
    write_artifact(tar, manifest, {SAVED_MODEL: saved})
    return str(tar)


def _deploy(models_uri: str, runner: str, output_uri: str) -> dict:
    return DeployOperator(
        task_id="deploy",
        algorithm="image-classification",
        models_uri=models_uri,
        pipeline=PIPELINE,
        runner=runner,
        output_uri=output_uri,
    ).execute({})


def test_local_exports_each_champion_as_a_new_version_and_logs_the_serve_command(tmp_path, capsys):
    models = f"file://{tmp_path}/models"
    base = tmp_path / "models" / "serving" / PIPELINE
    first, second = _model(tmp_path, "first"), _model(tmp_path, "second")
    promote_run(models, first, "r1")
    record = _deploy(models, "local", f"file://{tmp_path}/run/deploy")
    assert record["version"] == 1 and record["run_id"] == "r1"
    assert (base / "1" / "saved_model.pb").read_bytes() == b"graph of first"
    command = f"-m tasks.serve --model {record['model_uri']} --port 8080"
    assert record["serve_command"].endswith(command)
    assert command in capsys.readouterr().out  # in the task log
    assert json.loads((tmp_path / "run" / "deploy" / "deploy.json").read_text()) == record
    assert not (tmp_path / "run" / "deploy" / "inferenceservice.yaml").exists()

    # A rerun rewrites the same version; a new champion is the next one.
    assert _deploy(models, "local", f"file://{tmp_path}/run/deploy")["version"] == 1
    promote_run(models, second, "r2")
    assert _deploy(models, "local", f"file://{tmp_path}/run2/deploy")["version"] == 2
    assert (base / "2" / "variables" / "variables.index").read_bytes() == b"second"
    # Rollback: the earlier champion comes back as a newer version (the highest is served);
    # only the newest two versions are kept.
    rollback(models, PIPELINE)
    assert _deploy(models, "local", f"file://{tmp_path}/rb/deploy")["version"] == 3
    assert sorted(p.name for p in base.iterdir()) == ["2", "3"]
    assert (base / "3" / "saved_model.pb").read_bytes() == b"graph of first"


def test_without_a_champion_there_is_nothing_to_deploy(tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="no champion yet"):
        _deploy(f"file://{tmp_path}/models", "local", f"file://{tmp_path}/run/deploy")


def test_a_tampered_champion_is_not_exported(tmp_path):
    from operators.refusals import RunRefused

    models = f"file://{tmp_path}/models"
    promote_run(models, _model(tmp_path, "first"), "r1")
    promoted = tmp_path / "models" / PIPELINE / "models" / "r1" / "model.tar.gz"
    promoted.write_bytes(promoted.read_bytes()[:-40])
    with pytest.raises(RunRefused, match="model.tar.gz"):
        _deploy(models, "local", f"file://{tmp_path}/run/deploy")
    assert not (tmp_path / "models" / "serving").exists()


class FakeCustomObjects:
    """The Kubernetes API's custom objects, in memory."""

    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[str] = []

    def get_namespaced_custom_object(self, *, group, version, namespace, plural, name):
        if (namespace, name) not in self.objects:
            raise ApiException(status=404)
        return copy.deepcopy(self.objects[(namespace, name)])

    def create_namespaced_custom_object(self, *, group, version, namespace, plural, body):
        assert (group, version, plural) == ("serving.kserve.io", "v1beta1", "inferenceservices")
        self.calls.append("create")
        self.objects[(namespace, body["metadata"]["name"])] = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": "1"},
        }

    def replace_namespaced_custom_object(self, *, group, version, namespace, plural, name, body):
        current = self.objects[(namespace, name)]
        assert body["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
        self.calls.append("replace")
        version_now = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.objects[(namespace, name)] = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": version_now},
        }


def test_kubernetes_serves_the_champion_with_kserve_and_redeploys_on_rollback(
    s3_endpoint, tmp_path, monkeypatch
):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    api = FakeCustomObjects()
    monkeypatch.setattr(KubernetesHook, "custom_object_client", property(lambda self: api))
    monkeypatch.setenv("VISION_PIPELINES_K8S_NAMESPACE", "ml")
    monkeypatch.setenv("VISION_PIPELINES_K8S_SERVING_GPUS", "1")
    models = f"s3://{BUCKET}/deploy-test/models"
    promote_run(models, _model(tmp_path, "first"), "r1")
    promote_run(models, _model(tmp_path, "second"), "r2")
    record = _deploy(models, "kubernetes", f"s3://{BUCKET}/deploy-test/run/deploy")
    assert record["version"] == 2 and api.calls == ["create"]

    import fsspec

    fs = fsspec.filesystem("s3")
    base = f"{BUCKET}/deploy-test/models/serving/{PIPELINE}"
    assert fs.cat_file(f"{base}/2/saved_model.pb") == b"graph of second"
    written = yaml.safe_load(fs.cat_file(f"{BUCKET}/deploy-test/run/deploy/inferenceservice.yaml"))
    served = api.objects[("ml", "image-classification")]
    assert written["spec"] == served["spec"]
    check_inference_service(written)
    predictor = written["spec"]["predictor"]
    assert predictor["model"]["modelFormat"] == {"name": "tensorflow"}
    assert predictor["model"]["storageUri"] == f"s3://{base}"
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["securityContext"]["runAsNonRoot"] is True
    assert predictor["model"]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert predictor["automountServiceAccountToken"] is False

    rollback(models, PIPELINE)
    again = _deploy(models, "kubernetes", f"s3://{BUCKET}/deploy-test/rb/deploy")
    assert again["version"] == 3 and again["run_id"] == "r1"
    assert api.calls == ["create", "replace"]
    annotations = api.objects[("ml", "image-classification")]["metadata"]["annotations"]
    assert annotations["vision-pipelines/model-version"] == "3"
    assert annotations["vision-pipelines/run-id"] == "r1"
    assert fs.cat_file(f"{base}/3/saved_model.pb") == b"graph of first"


def _rendered(**settings) -> dict:
    deployment = Deployment(
        pipeline="semantic_segmentation",
        model_uri="s3://m/semantic_segmentation/models/r/model.tar.gz",
        run_id="r",
        version=1,
        model_base_path="s3://m/serving/semantic_segmentation",
        environment=get_algorithm("semantic-segmentation").environment,
    )
    return inference_service_of(deployment, KubernetesSettings(**settings))


def test_the_inference_service_carries_the_deployment_settings():
    pool = dict(node_selector={"pool": "gpu"}, tolerations=({"key": "gpu", "operator": "Exists"},))
    resource = _rendered(namespace="serving", service_account="reader", serving_gpus=2, **pool)
    assert resource["metadata"]["name"] == "semantic-segmentation"
    assert resource["metadata"]["namespace"] == "serving"
    predictor = resource["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "reader"
    assert predictor["nodeSelector"] == {"pool": "gpu"}
    assert predictor["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # On CPU the predictor is not bound to the steps' (GPU) node pool.
    predictor = _rendered(**pool)["spec"]["predictor"]
    assert "nodeSelector" not in predictor and "tolerations" not in predictor
    assert "nvidia.com/gpu" not in predictor["model"]["resources"]["limits"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r["spec"]["predictor"]["model"].update(storageURI="s3://x"), "storageURI"),
        (lambda r: r["spec"]["predictor"].update(minReplicas="2"), "'2' is not a int"),
        (lambda r: r["spec"]["predictor"]["volumes"][0].pop("name"), "volumes[0].name"),
        (lambda r: r["spec"]["predictor"]["securityContext"].update(runAsUser=True), "runAsUser"),
        (lambda r: r["metadata"].update(name="Image_Classification"), "not a DNS label"),
    ],
)
def test_a_resource_kserve_would_refuse_is_refused_naming_the_field(change, named):
    resource = _rendered()
    change(resource)
    with pytest.raises(InputError, match="does not fit KServe's schema") as refused:
        check_inference_service(resource)
    assert named in str(refused.value)


def test_a_model_on_a_local_disk_cannot_be_served_by_kserve():
    deployment = Deployment(
        pipeline=PIPELINE,
        model_uri="file:///data/models/m.tar.gz",
        run_id="r",
        version=1,
        model_base_path="file:///data/models/serving/image_classification",
        environment=get_algorithm("image-classification").environment,
    )
    with pytest.raises(InputError, match=r"pods can read \(s3://"):
        inference_service_of(deployment, KubernetesSettings())
