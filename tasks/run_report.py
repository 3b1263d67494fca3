"""Run reports: what each pipeline run produced (metrics, evaluation, pictures), which Airflow
run it was (run id, parameters, state) and why it failed, as HTML pages.

Runs are read through the storage layer (universal_pathlib, what Airflow's ObjectStoragePath is
made of): the local runs folder and the object-storage prefixes the deployment lists in
`VISION_PIPELINES_REPORT_URIS` (each holding `<pipeline>/run=<key>/` folders)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from upath import UPath

from tasks.contract import (
    EVALUATION,
    GATE,
    GATE_FOLDER,
    METRICS,
    PREDICTIONS,
    QUALITY,
    QUALITY_FOLDER,
    STEP_FOLDERS,
    SUMMARY,
    TUNING_FOLDER,
    TUNING_RESULT,
    Step,
)
from tasks.errors import InputError
from tasks.settings import setting_text

SERVED = (".png", ".json", ".jsonl", ".html")
"""What the files route serves: pictures, results, and the Data Docs page (.html, sent sandboxed:
no scripts, an origin of its own)."""
RUN_RECORD = "run.json"
"""`<run prefix>/run.json`: the Airflow run that wrote the folder (dag_id, run_id,
logical_date, params)."""
RUN_FOLDER_PREFIX = "run="


@dataclass(frozen=True)
class StepFailure:
    step: str
    reason: str


@dataclass(frozen=True)
class RunSummary:
    pipeline: str
    run: str
    folder: UPath
    training: dict | None
    evaluation: dict | None
    pictures: list[str]
    """PNG paths relative to the runs root."""
    record: dict | None = None
    """run.json: the Airflow run (None for folders written before runs were recorded)."""
    failures: list[StepFailure] = field(default_factory=list)
    gate: dict | None = None
    """gate/gate.json: the champion/challenger decision and its reasons."""
    evaluation_summary: dict | None = None
    """evaluate/summary.json: the algorithm's primary metric and its value."""
    quality: dict | None = None
    """quality/quality.json: each expectation's outcome on the run's data profile."""
    predictions: list[dict] = field(default_factory=list)
    """The first PREDICTIONS_SHOWN lines of batch transform's predictions."""
    predictions_file: str | None = None
    """Batch transform's predictions file, relative to the runs root (None: not written)."""
    tuning: dict | None = None
    """tuning/tuning.json of a tuning run: its trials and the best one."""

    @property
    def dag_id(self) -> str | None:
        return _text(self.record, "dag_id")

    @property
    def run_id(self) -> str | None:
        return _text(self.record, "run_id")

    @property
    def owner(self) -> str:
        """The DAG whose readers may see the run (see _owner)."""
        return _owner(self.record, self.pipeline)


def _owner(record: Mapping | None, pipeline: str) -> str:
    """The DAG that wrote a run: its run.json's, else the pipeline folder's name."""
    return _text(record, "dag_id") or pipeline


def run_prefix(uri: str) -> str | None:
    """The run prefix that `uri` lies in (`.../<pipeline>/run=<key>`), None outside a run."""
    parts = uri.rstrip("/").split("/")
    for i in range(len(parts) - 1, 0, -1):
        if parts[i].startswith(RUN_FOLDER_PREFIX):
            return "/".join(parts[: i + 1])
    return None


def report_path(prefix: str) -> str:
    """`<pipeline>/run=<key>`, URL-encoded: where the reports serve the run at `prefix`."""
    pipeline, run = prefix.rstrip("/").split("/")[-2:]
    return f"{quote(pipeline, safe='')}/{quote(run, safe='=')}"


def _json(path: UPath) -> dict | None:
    """The JSON object in `path`; None when it is missing or is not one (each run's files are
    judged on their own: one bad file does not break the pages)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return None
    return value if isinstance(value, dict) else None


PREDICTIONS_SHOWN = 10
PICTURE_TITLES = {
    "learning_curves": "Learning curves",
    "evaluation_confusion_matrix": "Confusion matrix",
    "evaluation_overlays": "Predicted masks over images",
    "champion_evaluation_confusion_matrix": "The champion's confusion matrix",
    "champion_evaluation_overlays": "The champion's predicted masks",
    "champion_vs_challenger": "Champion and challenger, per class",
    "objective": "The objective of every trial",
}
STEP_WORDS = {
    "train": "training",
    "evaluate": "evaluation",
    "quality": "data quality",
    "tuning": "tuning",
}


def _head(path: UPath, count: int) -> list[dict]:
    """The JSON objects of the first `count` lines of a JSON Lines file ([] when missing)."""
    rows: list[dict] = []
    try:
        with path.open("r", encoding="utf-8") as lines:
            for line in lines:
                if len(rows) == count:
                    break
                try:
                    row = json.loads(line)
                except ValueError:
                    break
                if isinstance(row, dict):
                    rows.append(row)
    except (OSError, ValueError):
        return []
    return rows


def picture_title(relative: str) -> str:
    """A picture's heading in words: "Confusion matrix (evaluation)", not its file path."""
    parts = relative.split("/")
    stem = parts[-1].removesuffix(".png")
    title = PICTURE_TITLES.get(stem, stem.replace("_", " ").capitalize())
    step = parts[-2] if len(parts) > 1 else ""
    return f"{title} ({STEP_WORDS.get(step, step)})" if step else title


def _text(values: Mapping | None, key: str) -> str | None:
    value = (values or {}).get(key)
    return value if isinstance(value, str) else None


def _href(path: str) -> str:
    """A relative link to `path`, every segment URL-encoded (a folder named `javascript:...`
    stays a path, never a scheme), then HTML-escaped."""
    return html.escape("/".join(quote(part, safe="=") for part in path.split("/")))


def _failures(folder: UPath) -> list[StepFailure]:
    """Every step of the run whose summary.json says it failed, with its reason."""
    found = []
    for path in sorted(folder.rglob(SUMMARY), key=lambda p: p.as_posix()):
        summary = _json(path)
        if summary and summary.get("status") == "failed":
            step = _text(summary, "step") or _relative(path.parent, folder)
            found.append(StepFailure(step, _text(summary, "reason") or "no reason reported"))
    return found


def _relative(path: UPath, root: UPath) -> str:
    return path.as_posix().removeprefix(root.as_posix().rstrip("/") + "/")


def _summary(root: UPath, folder: UPath) -> RunSummary:
    predictions = folder / STEP_FOLDERS[Step.TRANSFORM] / PREDICTIONS
    return RunSummary(
        pipeline=folder.parent.name,
        run=folder.name,
        folder=folder,
        training=_json(folder / STEP_FOLDERS[Step.TRAIN] / METRICS),
        evaluation=_json(folder / STEP_FOLDERS[Step.EVALUATE] / EVALUATION),
        # The steps' own pictures, not data (annotations) or batch transform's masks below them.
        pictures=sorted(_relative(p, root) for p in folder.glob("*/*.png")),
        record=_json(folder / RUN_RECORD),
        failures=_failures(folder),
        gate=_json(folder / GATE_FOLDER / GATE),
        evaluation_summary=_json(folder / STEP_FOLDERS[Step.EVALUATE] / SUMMARY),
        quality=_json(folder / QUALITY_FOLDER / QUALITY),
        predictions=_head(predictions, PREDICTIONS_SHOWN),
        predictions_file=_relative(predictions, root) if predictions.exists() else None,
        tuning=_json(folder / TUNING_FOLDER / TUNING_RESULT),
    )


REPORT_URIS_ENV = "VISION_PIPELINES_REPORT_URIS"


def runs_roots(local: Path) -> list[UPath]:
    """Where runs are looked for: the local runs folder, then the deployment's object-storage
    prefixes (`VISION_PIPELINES_REPORT_URIS`, comma-separated)."""
    listed = [u.strip().rstrip("/") for u in (setting_text(REPORT_URIS_ENV) or "").split(",")]
    return [UPath(local), *(UPath(u) for u in listed if u)]


def _modified(folder: UPath) -> float:
    """When the run was written (object storage has no folder times: its run.json's)."""
    for path in (folder, folder / RUN_RECORD):
        try:
            if modified := path.stat().st_mtime:
                return float(modified)
        except (OSError, ValueError, AttributeError):
            continue
    return 0.0


def find_runs(roots: Iterable[UPath]) -> list[RunSummary]:
    """Every `<root>/<pipeline>/run=<key>/` of every root, newest first."""
    found = [
        (root, folder)
        for root in roots
        if root.is_dir()
        for folder in root.glob(f"*/{RUN_FOLDER_PREFIX}*")
        if folder.is_dir()
    ]
    found.sort(key=lambda pair: _modified(pair[1]), reverse=True)
    return [_summary(root, folder) for root, folder in found]


def folder_of_run(roots: Iterable[UPath], dag_id: str, run_id: str) -> tuple[str, str] | None:
    """(pipeline, run folder) that the Airflow run `run_id` of `dag_id` wrote, found by the
    folders' run.json alone; None when none has."""
    for root in roots:
        if root.is_dir():
            for folder in root.glob(f"*/{RUN_FOLDER_PREFIX}*"):
                record = _json(folder / RUN_RECORD) or {}
                if (record.get("dag_id"), record.get("run_id")) == (dag_id, run_id):
                    return folder.parent.name, folder.name
    return None


def _run_folder(roots: Iterable[UPath], pipeline: str, run: str) -> tuple[UPath, UPath] | None:
    """(root, `<root>/<pipeline>/<run>`) of the first root that has the run; None when none
    does (or the names try to leave the roots)."""
    if (
        not run.startswith(RUN_FOLDER_PREFIX)
        or "/" in pipeline + run
        or pipeline in ("", ".", "..")
    ):
        return None
    for root in roots:
        folder = root / pipeline / run
        if folder.is_dir():
            return root, folder
    return None


def find_run(roots: Iterable[UPath], pipeline: str, run: str) -> RunSummary | None:
    """The run `<pipeline>/<run>` of the first root that has it (see _run_folder)."""
    found = _run_folder(roots, pipeline, run)
    return _summary(*found) if found else None


def run_dag(roots: Iterable[UPath], pipeline: str, run: str) -> str | None:
    """The DAG that wrote the run (its run.json's, else the pipeline folder's name), reading
    nothing else: what a report file's authorization needs."""
    found = _run_folder(roots, pipeline, run)
    if found is None:
        return None
    return _owner(_json(found[1] / RUN_RECORD), pipeline)


def report_file(roots: Iterable[UPath], relative: str) -> UPath:
    """A file under one of `roots` that reports may show; anything else (or outside) is
    refused with one sentence that does not repeat the request."""
    parts = PurePosixPath(relative).parts
    if (
        not parts
        or ".." in parts
        or relative.startswith("/")
        or Path(relative).suffix not in SERVED
    ):
        raise InputError("not a report file")
    for root in roots:
        if root.protocol in ("", "file", "local"):
            local = Path(root.path)
            path = (local / relative).resolve()
            if path.is_relative_to(local.resolve()) and path.is_file():
                return UPath(path)
        elif (path := root.joinpath(*parts)).is_file():
            return path
    raise InputError("not a report file")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return float("nan")


def _headline(run: RunSummary, state: str | None) -> str:
    if run.failures:
        first = run.failures[0]
        return f"failed in {first.step}: {first.reason}"
    metric = _text(run.evaluation_summary, "primary_metric")
    if metric and run.evaluation_summary.get("value") is not None:
        return f"{metric} {_number(run.evaluation_summary['value']):.4f}"
    if state:
        return state
    return "trained" if run.training is not None else "no results yet"


def _gate_verdict(gate: Mapping | None) -> str:
    if not gate:
        return ""
    return "promoted" if gate.get("promote") else "champion kept"


def render_index(
    runs: list[RunSummary],
    states: Mapping[tuple[str | None, str | None], str] | None = None,
    champions: Iterable[tuple[str | None, str | None]] = (),
) -> str:
    """The list of runs; `states` holds the Airflow state by (dag id, run id) where known,
    `champions` the (dag id, run id) of each pipeline's current champion."""
    states, champions = states or {}, set(champions)
    rows = "".join(
        f"<tr class='{'champion' if (r.dag_id, r.run_id) in champions else 'run'}'>"
        f"<td>{html.escape(r.pipeline)}</td><td><a href='{_href(f'{r.pipeline}/{r.run}')}/'>"
        f"{html.escape(r.run)}</a></td><td>{html.escape(r.run_id or '')}</td>"
        f"<td class='word'>{html.escape(states.get((r.dag_id, r.run_id), ''))}</td>"
        f"<td class='result'>{html.escape(_headline(r, None))}</td>"
        f"<td class='word'>{html.escape(_gate_verdict(r.gate))}</td>"
        f"<td class='word'>{'champion' if (r.dag_id, r.run_id) in champions else ''}</td></tr>"
        for r in runs
    )
    return _page(
        "Training runs",
        "<table class='runs'><tr><th>pipeline</th><th>run folder</th><th>Airflow run</th>"
        f"<th>state</th><th>result</th><th>gate</th><th>current</th></tr>{rows}</table>"
        if runs
        else "<p>No runs yet.</p>",
    )


def _render_gate(gate: Mapping) -> str:
    """The gate's decision, every reason, and the champion's figures beside the challenger's."""
    metric = _text(gate, "metric") or "metric"
    reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in gate.get("reasons") or [])

    def figure(value: object) -> str:
        return f"{_number(value):.4f}" if isinstance(value, int | float) else "-"

    rows = [("<b>" + html.escape(metric) + "</b>", gate.get("champion"), gate.get("challenger"))]
    per_class = gate.get("per_class") if isinstance(gate.get("per_class"), dict) else {}
    rows += [
        (
            html.escape(f"{name} ({_text(gate, 'per_class_metric') or ''})"),
            (v or {}).get("champion"),
            (v or {}).get("challenger"),
        )
        for name, v in per_class.items()
        if isinstance(v, dict)
    ]
    table = "".join(
        f"<tr><td>{name}</td><td>{figure(a)}</td><td>{figure(b)}</td></tr>" for name, a, b in rows
    )
    champion = html.escape(_text(gate, "champion_run_id") or "none")
    return (
        f"<h2>Gate: {html.escape(_gate_verdict(gate))}</h2><ul class='gate-reasons'>{reasons}</ul>"
        f"<p>champion: {champion}</p><table class='gate'><tr><th></th><th>champion</th>"
        f"<th>challenger (this run)</th></tr>{table}</table>"
    )


def _grid(cls: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A table with a header row, every cell escaped."""

    def row(cells: Sequence[object], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    return f"<table class='{cls}'>{row(header, 'th')}{''.join(row(r, 'td') for r in rows)}</table>"


def _render_quality(run: RunSummary) -> str:
    """Each expectation's outcome, the drift distributions side by side, the Data Docs link."""
    quality = run.quality or {}
    outcomes = _grid(
        "quality",
        ("expectation", "column", "severity", "outcome", "observed"),
        (
            (
                o.get("expectation"),
                o.get("column") or "",
                o.get("severity"),
                "passed" if o.get("success") else "FAILED",
                o.get("observed"),
            )
            for o in quality.get("results") or []
            if isinstance(o, dict)
        ),
    )
    notes = [
        *(quality.get("warnings") or []),
        *(f"skipped {w}" for w in quality.get("skipped") or []),
    ]
    warnings = "".join(f"<li>{html.escape(str(w))}</li>" for w in notes)
    distributions = "".join(
        f"<h3>{html.escape(column)}: share per value</h3>"
        + _grid(
            "distribution",
            ("", "champion's data", "this run's data"),
            (
                (
                    v,
                    *(
                        f"{_number(sides.get(side, {}).get(v, 0)):.3f}"
                        for side in ("champion", "run")
                    ),
                )
                for v in dict.fromkeys([*sides.get("champion", {}), *sides.get("run", {})])
            ),
        )
        for column, sides in (quality.get("distributions") or {}).items()
    )
    docs = f"{run.pipeline}/{run.run}/{QUALITY_FOLDER}/{quality.get('data_docs', '')}"
    verdict = "passed" if quality.get("success") else "expectations failed"
    return (
        f"<h2>Data quality: {verdict}</h2><ul class='quality-warnings'>{warnings}</ul>"
        f"{outcomes}{distributions}<p><a class='data-docs' href='../../files/{_href(docs)}'>"
        "Data Docs (Great Expectations)</a></p>"
    )


def _table(rows: Mapping[str, str], cls: str) -> str:
    body = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows.items()
    )
    return f"<table class='{cls}'>{body}</table>"


def render_run(run: RunSummary, *, state: str | None = None, airflow_url: str | None = None) -> str:
    """One run's page; `airflow_url` links back to the run in the Airflow UI."""
    about = {"Airflow run": run.run_id or "not recorded", "state": state or "unknown"}
    parts = [f"<p class='headline'>{html.escape(_headline(run, state))}</p>"]
    if airflow_url and run.run_id:
        parts.append(
            f"<p><a class='airflow-run' href='{html.escape(airflow_url)}'>open the run "
            "in Airflow</a></p>"
        )
    parts.append(_table(about, "run"))
    if run.failures:
        parts.append(
            "<h2>Failures</h2>" + _table({f.step: f.reason for f in run.failures}, "failures")
        )
    params = (run.record or {}).get("params")
    if isinstance(params, dict):
        parts.append(
            "<h2>Parameters</h2>"
            + _table({k: json.dumps(v) for k, v in sorted(params.items())}, "params")
        )
    final = (run.training or {}).get("final")
    for title, values, cls in (
        ("Training (last epoch)", final if isinstance(final, dict) else None, "training"),
        ("Evaluation", run.evaluation, "evaluation"),
    ):
        if values:
            numbers = {
                k: f"{_number(v):.4f}"
                for k, v in sorted(values.items())
                if isinstance(v, int | float)
            }
            parts.append(f"<h2>{title}</h2>" + _table(numbers, cls))
    per_class = (run.evaluation or {}).get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = {
            str(name): ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
            )
            for name, values in per_class.items()
            if isinstance(values, dict)
        }
        parts.append("<h2>Per class (evaluation)</h2>" + _table(rows, "per-class"))
    if run.tuning:
        parts.append(_render_tuning(run.tuning))
    if run.quality:
        parts.append(_render_quality(run))
    if run.gate:
        parts.append(_render_gate(run.gate))
    if run.predictions_file:
        parts.append(_render_predictions(run))
    parts += [
        f"<h3>{html.escape(picture_title(p))}</h3><a href='../../files/{_href(p)}'>"
        f"<img src='../../files/{_href(p)}' alt='{html.escape(p)}'></a>"
        for p in run.pictures
    ]
    return _page(f"{run.pipeline} / {run.run}", "".join(parts))


def _render_tuning(tuning: Mapping) -> str:
    """The trials (hyperparameters, objective, epochs, stopped early, time) and the best
    trial's hyperparameters as the training form's Other hyperparameters take them."""
    objective = tuning.get("objective") or {}
    rows = [
        (
            t.get("number"),
            ", ".join(f"{k}={v}" for k, v in sorted((t.get("hyperparameters") or {}).items())),
            "" if t.get("objective") is None else f"{_number(t['objective']):.4f}",
            t.get("epochs"),
            "yes" if t.get("stopped_early") else "no",
            t.get("state"),
            f"{_number(t.get('seconds')):.1f}",
        )
        for t in tuning.get("trials") or []
        if isinstance(t, dict)
    ]
    header = ["trial", "hyperparameters", str(objective.get("name", "objective")), "epochs"]
    table = _grid("trials", [*header, "stopped early", "state", "seconds"], rows)
    best = tuning.get("best")
    if not isinstance(best, dict):
        return "<h2>Tuning</h2><p>No trial finished.</p>" + table
    block = json.dumps(tuning.get("best_hyperparameters") or {}, indent=2)
    return (
        f"<h2>Tuning</h2><p class='tuning-best'>{len(rows)} trials ({tuning.get('strategy')}, "
        f"early stopping {tuning.get('early_stopping')}); the best: trial {best.get('number')}"
        f", {html.escape(str(objective.get('name')))} {_number(best.get('objective')):.4f}."
        "</p>"
        + table
        + "<p>The best trial's hyperparameters, for the training form's Other hyperparameters:"
        f"</p><pre class='best-hyperparameters'>{html.escape(block)}</pre>"
    )


def _render_predictions(run: RunSummary) -> str:
    """Batch transform's first predictions, each line's source-ref and the rest of its JSON."""
    rows = []
    for row in run.predictions:
        rest = {k: v for k, v in row.items() if k != "source-ref"}
        text = json.dumps(rest, separators=(", ", ": "))
        rows.append((row.get("source-ref", ""), text[:200] + ("..." if len(text) > 200 else "")))
    link = f"../../files/{_href(run.predictions_file or '')}"
    return (
        "<h2>Predictions (batch transform)</h2>"
        f"<p>The first {len(rows)} lines of <a class='predictions' href='{link}'>"
        f"{html.escape(PREDICTIONS)}</a>:</p>"
        + _grid("predictions", ["source-ref", "prediction"], rows)
    )


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        "</title><style>body{font-family:sans-serif;margin:1em 2em;max-width:100%}"
        "table{border-collapse:collapse;max-width:100%}td,th{padding:.2em 1em;"
        "text-align:left;vertical-align:top;overflow-wrap:anywhere}"
        # A key column (step, parameter) breaks between words only; long values anywhere.
        "td:first-child{overflow-wrap:normal;white-space:nowrap}img{max-width:100%}"
        # Short words never break; a message breaks between its words (inside one only when a
        # word is wider than the column), not wherever the table's widths would squeeze it.
        "td.word{white-space:nowrap}td.result{overflow-wrap:break-word;min-width:16em}"
        "</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
