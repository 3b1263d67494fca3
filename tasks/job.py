"""`python -m tasks.job STEP ...`: one container step with its storage around it.

The same command runs in a Kubernetes pod (ml-root /opt/ml) and in the local runner (ml-root on
local disk): channels are staged from their URIs into `<ml-root>/input/data/<channel>/`, the step
runs under the container contract with the algorithm's code (tasks.steps), and `model/`
and `output/` are uploaded to `--output-uri`: the step's results, `summary.json` (exit code,
failure class, primary metric) and, when the step fails, the `failure` reason.
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import Any

import fsspec

from tasks.algorithms import ALGORITHMS, get_algorithm
from tasks.atomic import atomic_write_text
from tasks.contract import (
    DEFAULT_ML_ROOT,
    SUMMARY,
    MLRoot,
    Step,
    attempt,
    exit_process,
    run_job,
    unwritable,
)
from tasks.errors import StepTerminated
from tasks.signing import require_deployment_key
from tasks.staging import check_exists, clear, remove_prefix, stage_in, upload_folder
from tasks.steps import execute
from tasks.streaming import PIPE, URI_KEY, input_mode
from tasks.training import cluster
from tasks.uris import check_uri


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
    """Write input/config/*.json and stage every channel but those read in Pipe input mode
    (their URI goes into inputdataconfig.json); nothing of an earlier attempt's input stays (a
    channel left over from it, say `model`, would change what this run does)."""
    clear(ml.root / "input")
    atomic_write_text(ml.hyperparameters_path, json.dumps(hyperparameters, indent=2) + "\n")
    config = {name: dict(input_data_config.get(name, {})) for name in channels}
    for name, uri in channels.items():
        if input_mode(config[name]) == PIPE:  # read where it lies, while training
            check_exists(uri)
            config[name][URI_KEY] = uri
        else:
            stage_in(uri, ml.channel(name))
    atomic_write_text(ml.input_data_config_path, json.dumps(config, indent=2) + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m tasks.job` (what the container step operators send)."""
    parser = argparse.ArgumentParser(
        prog="python -m tasks.job",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", choices=[s.value for s in Step])
    parser.add_argument(
        "--algorithm", default="image-classification", help="one of " + ", ".join(ALGORITHMS)
    )
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
    parser.add_argument(
        "--checkpoint-uri",
        default="",
        help="where checkpoints/ is kept (the managed service's CheckpointConfig): copied in "
        "before the step, the backup kept at its end and copied back, so a later job resumes",
    )
    return parser


def _check_start(channels: dict[str, str], output_uri: str, checkpoint_uri: str) -> None:
    """What a step needs before it starts: URIs the deployment allows, its signing key."""
    for name, uri in channels.items():
        check_uri(uri, f"channel {name!r}")
    check_uri(output_uri, "--output-uri")
    if checkpoint_uri:
        check_uri(checkpoint_uri, "--checkpoint-uri")
    require_deployment_key()


def restore_checkpoints(ml: MLRoot, checkpoint_uri: str) -> None:
    """checkpoints/ as the last job that kept them left it (empty the first time), and the
    checkpoint config that tells training to keep its backup."""
    clear(ml.checkpoints_dir)
    ml.checkpoints_dir.mkdir(parents=True)
    fs, path = fsspec.core.url_to_fs(checkpoint_uri)
    if fs.isdir(path):  # a copy, never a link: training writes into it
        fs.get(path.rstrip("/") + "/", str(ml.checkpoints_dir), recursive=True)
    config = {"Uri": checkpoint_uri, "LocalPath": str(ml.checkpoints_dir)}
    atomic_write_text(ml.checkpoint_config_path, json.dumps(config, indent=2) + "\n")


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise StepTerminated("stopped by SIGTERM (pod deleted or evicted, or the task killed)")


def main(argv: list[str] | None = None) -> int:
    # As PID 1 in a pod, Python ignores SIGTERM unless it has a handler: it would be killed
    # after the grace period, mid-upload. With one, the step ends as a failure on record.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = build_parser().parse_args(argv)
    channels = dict(args.channel)
    # Before anything is read or written (no failure file either): the Airflow side's checks.
    refused = run_job(lambda: _check_start(channels, args.output_uri, args.checkpoint_uri), None)
    if refused:
        return refused
    ml = MLRoot(args.ml_root)
    workers = attempt(lambda: cluster.resolve(ml.config_dir), None)
    if workers.code:
        return workers.code

    def stage() -> None:
        spec = get_algorithm(args.algorithm)
        spec.check_channels(args.step, channels, complete=False)
        spec.check_input_modes(args.step, args.input_data_config)
        prepare(ml, channels, args.hyperparameters, args.input_data_config)
        if args.checkpoint_uri:
            restore_checkpoints(ml, args.checkpoint_uri)
        spec.check_channels(args.step, channels)  # what staging did not already refuse

    if not workers.result.is_chief:
        # Training on several machines: its outputs (the chief's twins) stay in its pod.
        return execute(args.step, args.algorithm, ml, workers.result, stage)
    if code := unwritable(ml):
        return code
    # A rerun starts from clean outputs (checkpoints stay, so training resumes).
    for folder in (ml.model_dir, ml.output_dir):
        clear(folder)
        folder.mkdir(parents=True)
    output_uri = args.output_uri.rstrip("/")
    # The step's prefix holds one attempt's outputs: an earlier attempt's model or metrics
    # must not stay beside this one's failure. summary.json, uploaded last, marks it complete.
    remove_prefix(output_uri)

    code = execute(args.step, args.algorithm, ml, workers.result, stage)
    if args.checkpoint_uri and ml.checkpoints_kept:  # kept whether the step succeeded or not
        upload_folder(ml.checkpoints_dir, args.checkpoint_uri)
    uploaded = upload_folder(ml.model_dir, output_uri) + upload_folder(
        ml.output_dir, output_uri, last=SUMMARY
    )
    print("uploaded: " + ", ".join(uploaded), flush=True)
    return code


if __name__ == "__main__":
    exit_process(main())
