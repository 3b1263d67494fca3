"""`python -m tasks.serve` with an image-classification model: every accepted type, refusals
with a sentence, and 8 concurrent clients answered as batch transform predicts."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tasks.steps.batch_prediction import transform
from tasks.train import main as train_main
from tests.conftest import _make_ml_root
from tests.serving import post, served

pytestmark = pytest.mark.integration
CLASSES = ["circle", "cross", "square", "triangle"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, shapes):
    ml = _make_ml_root(
        tmp_path_factory.mktemp("serving") / "ml",
        shapes,
        {"num_layers": "20", "image_shape": "3,16,16", "epochs": "1", "mini_batch_size": "8"},
    )
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 0
    return ml.model_dir / "model.tar.gz"


@pytest.mark.parametrize("flag", ["--inter-op-threads", "--intra-op-threads", "--max-batch"])
def test_a_count_out_of_range_is_refused_before_the_model_loads(flag, capsys):
    from tasks.serve import main as serve_main

    assert serve_main(["--model", "/nonexistent/model.tar.gz", flag, "-1"]) == 2
    assert flag in capsys.readouterr().err


def _png(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, "PNG")
    return out.getvalue()


def test_every_accepted_type_and_each_refusal(model, shapes):
    jpeg = next(shapes.rglob("*.jpg")).read_bytes()
    with served(model, VISION_PIPELINES_MAX_IMAGE_BYTES="100000") as url:
        status, kind, body = post(url, jpeg, "image/jpeg")
        assert (status, kind) == (200, "application/json")
        probabilities = json.loads(body)
        assert len(probabilities) == 4 and abs(sum(probabilities) - 1) < 1e-5
        status, _, body = post(url, jpeg, "application/x-image", "application/json")
        assert status == 200 and np.allclose(json.loads(body), probabilities, atol=1e-5)
        # A PNG of the same picture (Pillow's decoding of the JPEG, not TensorFlow's: the pixels
        # differ slightly, so do the numbers).
        status, _, body = post(url, _png(jpeg), "image/png", "application/json")
        assert status == 200 and abs(sum(json.loads(body)) - 1) < 1e-5
        status, kind, body = post(url, jpeg, "image/jpeg", "application/jsonlines")
        assert kind == "application/jsonlines" and body.endswith(b"\n")
        assert json.loads(body) == {"prediction": probabilities}
        status, kind, body = post(url, jpeg, "image/jpeg", "text/html, application/json;verbose")
        verbose = json.loads(body)
        assert kind == "application/json;verbose"
        assert verbose["labels"] == CLASSES
        assert verbose["predicted_label"] == CLASSES[int(np.argmax(probabilities))]

        refused = {
            "corrupt": post(url, b"\xff\xd8 not a jpeg", "image/jpeg"),
            "type": post(url, jpeg, "text/plain"),
            "accept": post(url, jpeg, "image/jpeg", "text/csv"),
            "large": post(url, b"\x89PNG" + b"\0" * 100_000, "image/png"),
            "empty": post(url, b"", "image/jpeg"),
        }
        assert {k: v[0] for k, v in refused.items()} == {
            "corrupt": 400,
            "type": 415,
            "accept": 406,
            "large": 400,
            "empty": 400,
        }
        sentences = {k: v[2].decode().strip() for k, v in refused.items()}
        assert sentences["corrupt"].startswith("request body: cannot decode image")
        assert sentences["corrupt"].endswith("allowed: JPEG or PNG")
        assert sentences["type"] == (
            "Content-Type text/plain is not accepted; send one image as image/jpeg, image/png, "
            "application/x-image"
        )
        assert sentences["accept"].startswith("Accept text/csv cannot be served; allowed: ")
        assert "allowed: at most 100000 bytes an image" in sentences["large"]
        assert "Traceback" not in "".join(sentences.values())
        # The server goes on after every refusal.
        assert post(url, jpeg, "image/jpeg")[0] == 200


def test_concurrent_clients_get_what_batch_transform_predicts(model, shapes, tmp_path):
    images = sorted(shapes.rglob("*.jpg"))
    expected = tmp_path / "predictions.jsonl"
    transform(model, shapes, expected)
    rows = {
        json.loads(line)["source-ref"]: json.loads(line)["prediction"]
        for line in expected.read_text().splitlines()
    }
    log: list[str] = []
    with (
        served(model, "--batch-wait-ms", "20", "--intra-op-threads", "2", log=log) as url,
        ThreadPoolExecutor(8) as clients,
    ):
        answers = list(clients.map(lambda p: post(url, p.read_bytes(), "image/jpeg"), images * 2))
    for path, (status, _, body) in zip(images * 2, answers, strict=True):
        assert status == 200
        name = path.relative_to(shapes).as_posix()
        assert np.allclose(json.loads(body), rows[name], atol=1e-5), name
    # The server's summary lines (no line a request): all were served, some in shared batches.
    summaries = [line.split("served ")[1] for line in log if "served " in line]
    served_count = sum(int(s.split(" requests")[0]) for s in summaries)
    largest = max(int(s.split("(largest ")[1].split(")")[0]) for s in summaries)
    assert served_count == len(answers) and largest > 1, summaries
    assert not any("predicting" in line for line in log)
    # TensorFlow's threads as asked: one between ops by default, two inside each as given.
    assert any("TensorFlow threads: 1 inter-op, 2 intra-op" in line for line in log), log[:3]


def test_the_saved_model_answers_a_tf_serving_request(model, shapes, tmp_path):
    """The deploy step's export in TensorFlow Serving's layout (`<base>/<version>/`) loads with
    TensorFlow; TF Serving's REST body `{"instances": [{"b64": ...}]}` maps each instance to one
    element of the signature's one string input, base64 decoded: the exported
    `serving_default` takes it as it is and answers as batch transform does."""
    import tensorflow as tf

    from tasks.serving.layout import export_version, versions

    images = sorted(shapes.rglob("*.jpg"))[:3]
    body = json.dumps(
        {"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in images]}
    )
    base = tmp_path / "serving" / "image_classification"
    assert export_version(str(model), str(base), 7) == f"{base}/7"
    assert versions(str(base)) == [7] and (base / "7" / "variables").is_dir()
    signature = tf.saved_model.load(str(base / "7")).signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    instances = [base64.b64decode(i["b64"]) for i in json.loads(body)["instances"]]
    answer = signature(**{name: tf.constant(instances)})["probabilities"].numpy()
    transform(model, shapes, tmp_path / "predictions.jsonl")
    rows = {
        json.loads(line)["source-ref"]: json.loads(line)["prediction"]
        for line in (tmp_path / "predictions.jsonl").read_text().splitlines()
    }
    for path, probabilities in zip(images, answer, strict=True):
        assert np.allclose(probabilities, rows[path.relative_to(shapes).as_posix()], atol=1e-5)
