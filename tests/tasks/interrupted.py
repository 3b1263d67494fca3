"""A training job SIGKILLed once some epochs are on disk: the start of the resume tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tasks.contract import MLRoot

ROOT = Path(__file__).resolve().parents[2]


def kill_after_epochs(ml: MLRoot, algorithm: str, epochs: int = 2) -> int:
    """Run `python -m tasks.train` on `ml`, SIGKILL it once its backup holds `epochs` finished
    epochs, and return how many it had finished (the backup's own count)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    job = subprocess.Popen(
        [sys.executable, "-m", "tasks.train", "--algorithm", algorithm, "--ml-root", str(ml.root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metadata = ml.checkpoints_dir / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 300
    # Wait for the condition itself (the epochs on disk), not for a fixed time.
    while time.monotonic() < deadline and job.poll() is None:
        # Keras 3 records the epochs it completed.
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= epochs:
            break
        time.sleep(0.2)
    assert job.poll() is None, "training ended before it could be interrupted"
    job.send_signal(signal.SIGKILL)
    job.wait()
    return json.loads(metadata.read_text())["epoch"]
