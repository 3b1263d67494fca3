"""Resumable training: Keras' BackupAndRestore under checkpoints/, kept only for the same network,
the per-epoch history and the best epoch's weights (restore_best_weights), which survive
restarts."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tasks.atomic import atomic_path, atomic_write_text

HISTORY = "history.csv"
BACKUP = "backup"
ARCHITECTURE = "architecture.json"
BEST_WEIGHTS = "best_weights.npz"
log = logging.getLogger("vision_pipelines")


class Checkpoints:
    """The checkpoints folder of one ml-root."""

    def __init__(self, folder: Path, *, keep: bool = False):
        self.folder = folder
        self.history_path = folder / HISTORY
        # Kept when training ends where the checkpoints go to storage: a later job (a
        # continued tuning trial) resumes from them.
        self.keep = keep

    def resume_point(self, architecture: Mapping[str, Any]) -> int:
        """The epoch a previous, interrupted attempt of the same network reached (0 when
        starting afresh: a checkpoint of another architecture cannot be resumed). Call before
        training; an earlier history is dropped when nothing is resumed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        backup = self.folder / BACKUP
        recorded = self.folder / ARCHITECTURE
        current = json.dumps(dict(architecture), sort_keys=True, default=list)
        if recorded.exists() and recorded.read_text() != current and backup.exists():
            log.info(
                "the checkpoint is of another network (%s); starting afresh", recorded.read_text()
            )
            shutil.rmtree(backup)
        atomic_write_text(recorded, current)
        metadata = backup / "training_metadata.json"
        if metadata.exists():
            # Keras 3 records the epochs it completed.
            resumed = int(json.loads(metadata.read_text()).get("epoch", 0))
        elif backup.is_dir() and any(backup.iterdir()) and self.history_path.exists():
            # Keras 2's backup (a TF checkpoint) does not say its epoch; it saves every epoch.
            resumed = len(self.history())
        else:
            resumed = 0
        if resumed:
            log.info("resuming from the checkpoint after epoch %d", resumed)
        else:
            self.history_path.unlink(missing_ok=True)
            (self.folder / BEST_WEIGHTS).unlink(missing_ok=True)
        return resumed

    def callbacks(
        self, *, batches_per_epoch: int, every_epochs: int = 1, keras_module: Any = keras
    ) -> list[Any]:
        """History (appended across restarts) and a backup every `every_epochs` epochs, as
        callbacks of `keras_module` (Keras 3, or tf_keras for Keras 2 models)."""
        return [
            keras_module.callbacks.CSVLogger(str(self.history_path), append=True),
            keras_module.callbacks.BackupAndRestore(
                str(self.folder / BACKUP),
                save_freq=every_epochs * batches_per_epoch if every_epochs > 1 else "epoch",
                delete_checkpoint=not self.keep,
            ),
        ]

    def history(self) -> list[dict]:
        """Per-epoch rows of the CSV log (kept across restarts): `val_x` -> `validation_x`,
        other metrics `train_x`; a repeated epoch (after a restart) keeps its latest values."""
        rows: dict[int, dict] = {}
        with open(self.history_path, newline="") as f:
            for raw in csv.DictReader(f):
                epoch = int(raw.pop("epoch")) + 1
                row: dict[str, float | int] = {"epoch": epoch}
                for key, value in raw.items():
                    if key.startswith("val_"):
                        name = "validation_" + key[4:]
                    elif key in ("images_per_second", "learning_rate"):
                        name = key
                    else:
                        name = "train_" + key
                    row[name] = float(value)
                rows[epoch] = row
        return [rows[e] for e in sorted(rows)]


def kept_numbers(epochs: list[dict], kept_epoch: int | None) -> dict:
    """The metrics of the epoch kept (the last when `kept_epoch` is None), without its number."""
    row = next((r for r in epochs if r["epoch"] == kept_epoch), epochs[-1])
    return {k: v for k, v in row.items() if isinstance(v, int | float) and k != "epoch"}


class BestWeights:
    """Keras' restore_best_weights for any Keras generation (mixed into its Callback): after each
    epoch whose `monitor` (higher is better) beats every earlier one, of this attempt or of an
    interrupted one, the weights go to checkpoints/best_weights.npz; when training ends, they
    are put back. `kept` is {"epoch", "value"} of the epoch kept (None: no validation value)."""

    def __init__(self, *, monitor: str, folder: Path):
        super().__init__()
        self.monitor, self.path = monitor, folder / BEST_WEIGHTS
        self.kept: dict | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.kept = None
        if self.path.exists():
            with np.load(self.path) as saved:
                self.kept = {"epoch": int(saved["epoch"]), "value": float(saved["value"])}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.kept is None or value > self.kept["value"]:
            self.kept = {"epoch": epoch + 1, "value": float(value)}
            weights = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
            with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
                np.savez(f, epoch=epoch + 1, value=float(value), **weights)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.kept is None:
            log.warning("restore_best_weights: no epoch reported %s; the last epoch is kept",
                        self.monitor)  # fmt: skip
            return
        with np.load(self.path) as saved:
            count = sum(1 for name in saved.files if name.startswith("w"))
            self.model.set_weights([saved[f"w{i}"] for i in range(count)])
        print(
            f"restore_best_weights: kept epoch {self.kept['epoch']} "
            f"({self.monitor}={self.kept['value']:.4f})",
            flush=True,
        )


class BestWeightsCallback(BestWeights, keras.callbacks.Callback):
    """BestWeights as a Keras 3 callback."""
