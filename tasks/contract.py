"""The container contract: the ml-root layout, hyperparameters as strings, the failure file."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import InputError

DEFAULT_ML_ROOT = "/opt/ml"
EXIT_OK, EXIT_INTERNAL_ERROR, EXIT_BAD_INPUT = 0, 1, 2

log = logging.getLogger("vision_pipelines")


@dataclass(frozen=True)
class MLRoot:
    """Paths of the managed service's training-container layout under one root folder."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_path(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_path(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / "metrics.json"

    @property
    def failure_path(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"


def _read_json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{path}: file not found; the job needs it") from e
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_hyperparameters(ml_root: MLRoot) -> dict[str, str]:
    """hyperparameters.json as strings, the way the managed service sends them."""
    raw = _read_json_object(ml_root.hyperparameters_path)
    values: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, (dict, list)) or value is None:
            raise InputError(
                f"{ml_root.hyperparameters_path}: hyperparameter {name!r} must be a string, "
                f"got {json.dumps(value)}"
            )
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def read_input_data_config(ml_root: MLRoot) -> dict[str, dict]:
    """inputdataconfig.json (channel -> settings); an absent file means no settings."""
    if not ml_root.input_data_config_path.exists():
        return {}
    return _read_json_object(ml_root.input_data_config_path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary name beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def run_job(job: Callable[[], None], failure_path: Path | None) -> int:
    """Run `job`; map bad input to exit 2 and anything else to exit 1, with the reason on file."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        job()
    except InputError as e:
        message = str(e)
        code = EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the contract reports every failure in output/failure
        message = f"internal error: {type(e).__name__}: {e}"
        code = EXIT_INTERNAL_ERROR
        traceback.print_exc(file=sys.stderr)
    else:
        return EXIT_OK
    if failure_path is not None:
        atomic_write_text(failure_path, message + "\n")
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    return code
