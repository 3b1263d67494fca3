"""Progress lines go to the log at INFO: on stderr an Airflow task log shows them as errors."""

from __future__ import annotations

import logging

from tasks.progress import Progress


def test_progress_is_logged_at_info_with_rate_and_eta(caplog, capsys):
    caplog.set_level(logging.INFO, logger="tasks.progress")
    progress = Progress(10, desc="packing train.rec", unit="images", interval=0)
    progress.update(4)
    progress.close()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines[0][0] == logging.INFO
    assert lines[0][1].startswith("packing train.rec: 4/10 images (40%)") and "ETA" in lines[0][1]
    assert "done in" in lines[-1][1]
    assert capsys.readouterr().err == ""
