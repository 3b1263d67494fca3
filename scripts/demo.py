"""`make demo`: generate a small learnable dataset, run the image_classification DAG on it with
`airflow dags test` (SQLite, local runner, local files), then show where everything is."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from tasks.contract import EVALUATION, LEARNING_CURVES, METRICS, MODEL_ARCHIVE, PREDICTIONS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
DATASET = DATA / "datasets" / "shapes"
SCENES = DATA / "datasets" / "scenes"
RUNS = DATA / "runs" / "image_classification"
CONF = {
    "dataset_uri": f"file://{DATASET}",
    "output_uri": f"file://{RUNS}",
    "num_layers": 20,
    "image_shape": "3,32,32",
    "epochs": 20,
    "mini_batch_size": 32,
    "learning_rate": 0.1,
    "hyperparameters": {"momentum": "0.9", "lr_scheduler_step": "12,17"},
}
# Lines of the task logs worth showing while the demo runs.
SHOW = re.compile(r"DAG TEST\] (starting|end)|epoch \d+/\d+: [a-z]|packed|accuracy \d|wrote \d+")


def main() -> int:
    python = Path(sys.executable)
    if not DATASET.is_dir():
        subprocess.run(
            [python, "-m", "tasks.data.synthetic", DATASET, "--per-class", "250"], check=True
        )
    if not SCENES.is_dir():  # the semantic_segmentation form's default dataset
        from tasks.data.synthetic import make_scenes_dataset

        make_scenes_dataset(SCENES, train=200, validation=40, classes=3, size=(64, 48))
    log_path = DATA / "demo.log"
    print(f"running the image_classification DAG (full log: {log_path}) ...", flush=True)
    command = [
        python.parent / "airflow",
        "dags",
        "test",
        "image_classification",
        "-c",
        json.dumps(CONF),
    ]
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ,
            cwd=ROOT,
        )
        for line in process.stdout or ():
            log.write(line)
            if SHOW.search(line):
                shown = re.sub(r"^\S+ \[\w+\s*\] |\s+\[[\w.]+\] loc=.*$", "", line.strip())
                print("  " + shown[:160], flush=True)
        if process.wait() != 0:
            print(f"the DAG run failed; see {log_path}", file=sys.stderr)
            return 1
    run = max(RUNS.glob("run=*"), key=lambda p: p.stat().st_mtime)
    return report(run)


def report(run: Path) -> int:
    predictions = run / "batch_transform" / PREDICTIONS
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    images = sum(1 for p in DATASET.rglob("*") if p.suffix in (".jpg", ".jpeg", ".png"))
    sums_ok = all(math.isclose(sum(r["prediction"]), 1.0, abs_tol=1e-4) for r in rows)
    evaluation = json.loads((run / "evaluate" / EVALUATION).read_text())
    print(f"""
run folder:        {run}
.lst files:        {run / "lists" / "train.lst"}, {run / "lists" / "validation.lst"}
RecordIO:          {run / "recordio" / "train" / "train.rec"} (+ .idx), validation likewise
data quality:      {run / "quality" / "quality.json"} (Great Expectations; Data Docs: \
{run / "quality" / "data_docs" / "index.html"})
model:             {run / "train" / MODEL_ARCHIVE}
training metrics:  {run / "train" / METRICS} (learning curves: {LEARNING_CURVES})
evaluation:        {run / "evaluate" / EVALUATION} (evaluation_confusion_matrix.png)
predictions:       {predictions}: {len(rows)} lines for {images} images, \
probabilities sum to 1: {sums_ok}
serving:           {run / "deploy" / "deploy.json"} (when this run's model became the champion:
                   the deploy task's log has the command that serves it)

validation accuracy: {evaluation["accuracy"]:.4f} on {evaluation["samples"]} images""")
    return 0 if len(rows) == images and sums_ok else 1


if __name__ == "__main__":
    sys.exit(main())
