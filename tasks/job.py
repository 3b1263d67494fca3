"""`python -m tasks.job STEP ...`: one container step with its storage around it.

The same command runs in a Kubernetes pod (ml-root /opt/ml) and in the local runner (ml-root on
local disk): channels are staged from their URIs into `<ml-root>/input/data/<channel>/`, the step
runs under the container contract, and `model/` and `output/` are uploaded to `--output-uri`
(the failure reason too, when the step fails).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tasks.contract import DEFAULT_ML_ROOT, MLRoot, atomic_write_text, run_job
from tasks.errors import InputError
from tasks.staging import clear, remove, stage_in, upload_folder

STEPS = ("train", "evaluate", "transform")
STEP_CHANNELS = {"evaluate": ("model", "validation"), "transform": ("model", "data")}


def _channel_arg(text: str) -> tuple[str, str]:
    name, sep, uri = text.partition("=")
    if not sep or not name or not uri:
        raise argparse.ArgumentTypeError(f"expected CHANNEL=URI, got {text!r}")
    return name, uri


def prepare(
    ml: MLRoot,
    channels: dict[str, str],
    hyperparameters: dict[str, str],
    input_data_config: dict[str, dict],
) -> None:
    """Write input/config/*.json and stage every channel; nothing of an earlier attempt's input
    stays (a channel left over from it, say `model`, would change what this run does)."""
    clear(ml.root / "input")
    atomic_write_text(ml.hyperparameters_path, json.dumps(hyperparameters, indent=2) + "\n")
    config = {name: input_data_config.get(name, {}) for name in channels}
    atomic_write_text(ml.input_data_config_path, json.dumps(config, indent=2) + "\n")
    for name, uri in channels.items():
        stage_in(uri, ml.channel(name))


def run_step(step: str, algorithm: str, ml: MLRoot) -> None:
    """Run one step on a prepared ml-root; outputs land in model/ and output/."""
    if step == "train":
        from tasks.train import run

        run(algorithm, ml)
        return
    for name in STEP_CHANNELS[step]:
        if not ml.channel(name).exists():
            raise InputError(f"step {step!r} needs the {name!r} channel (--channel {name}=URI)")
    models = sorted(ml.channel("model").rglob("*.tar.gz"))
    if len(models) != 1:
        raise InputError(f"channel 'model': expected one model.tar.gz, found {len(models)}")
    model = models[0]
    if step == "evaluate":
        from tasks.evaluate import evaluate

        evaluate(model, ml.channel("validation"), ml.output_dir / "evaluation.json")
    else:
        from tasks.transform import transform

        transform(model, _data_input(ml.channel("data")), ml.output_dir / "predictions.jsonl")


def _data_input(channel: Path) -> Path:
    """The transform input: the channel folder, or the one `.lst` / manifest staged into it
    (resolved, so that its relative image paths point where the file really is)."""
    lists = [p for p in channel.iterdir() if p.suffix in (".lst", ".manifest", ".jsonl")]
    return lists[0].resolve() if len(lists) == 1 else channel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.job",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--algorithm", default="image-classification")
    parser.add_argument("--ml-root", type=Path, default=Path(DEFAULT_ML_ROOT))
    parser.add_argument(
        "--channel",
        type=_channel_arg,
        action="append",
        default=[],
        metavar="CHANNEL=URI",
        help="data to stage into input/data/CHANNEL",
    )
    parser.add_argument(
        "--hyperparameters", type=json.loads, default={}, help="JSON object of string values"
    )
    parser.add_argument(
        "--input-data-config",
        type=json.loads,
        default={},
        help="JSON object: channel -> {ContentType, ...}",
    )
    parser.add_argument("--output-uri", required=True, help="where model/ and output/ go")
    args = parser.parse_args(argv)
    ml = MLRoot(args.ml_root)
    # A rerun starts from clean outputs (checkpoints stay, so training resumes).
    for folder in (ml.model_dir, ml.output_dir):
        clear(folder)
        folder.mkdir(parents=True)
    remove(f"{args.output_uri.rstrip('/')}/failure")

    def job() -> None:
        prepare(ml, dict(args.channel), args.hyperparameters, args.input_data_config)
        run_step(args.step, args.algorithm, ml)

    code = run_job(job, ml.failure_path)
    uploaded = upload_folder(ml.model_dir, args.output_uri) + upload_folder(
        ml.output_dir, args.output_uri
    )
    print("uploaded: " + ", ".join(uploaded), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
