"""Resumable training: Keras' BackupAndRestore under checkpoints/, kept only for the same network,
and the per-epoch history that survives restarts."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from tasks.atomic import atomic_write_text

HISTORY = "history.csv"
BACKUP = "backup"
ARCHITECTURE = "architecture.json"
log = logging.getLogger("vision_pipelines")


class Checkpoints:
    """The checkpoints folder of one ml-root."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.history_path = folder / HISTORY

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
        elif self.history_path.exists():
            self.history_path.unlink()
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
