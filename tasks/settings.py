"""A deployment's settings, in one place: every setting's name, default and meaning (`SETTINGS`,
the README's table is generated from it: `python -m tasks.settings`), and one way to read them.

Where a value comes from: on the Airflow side, Airflow's configuration first, section
`[vision_pipelines]`, the key being the name without its `VISION_PIPELINES_` prefix in lower case
(so `AIRFLOW__VISION_PIPELINES__K8S_NAMESPACE` and airflow.cfg's `k8s_namespace` both work:
operators/__init__.py adds that source); else the environment variable itself, which is also
how a step (a local process, a pod) is given the settings it reads (`step_environment`). A bad
value is one sentence naming the setting, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from tasks.errors import InputError

PREFIX = "VISION_PIPELINES_"
_SOURCES: list[Callable[[str], str | None]] = []


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    """The default, in words where it is not a value."""
    description: str
    steps: bool = False
    """Read by the steps too: the Airflow side hands its value to every step it starts."""

    @property
    def key(self) -> str:
        """Its key in Airflow's `[vision_pipelines]` section."""
        return self.name.removeprefix(PREFIX).lower()


def _s(name: str, default: str, description: str, *, steps: bool = False) -> Setting:
    return Setting(PREFIX + name, default, description, steps)


SETTINGS: tuple[Setting, ...] = (
    # Where things run and live
    _s("RUNNER", "local", "the form's default runner (local, kubernetes, or a plug-in's name)"),
    _s("DATA_ROOT", "./data", "where local datasets, outputs and models live"),
    _s("WORK_DIR", "./data/work", "the local runner's ml-root folders"),
    _s(
        "ALLOWED_URIS",
        "none: every location",
        "comma-separated prefixes runs may read and write (set it in every shared deployment)",
        steps=True,
    ),
    _s(
        "REPORT_URIS",
        "none",
        "comma-separated object-storage prefixes the report pages list, beside the local runs",
    ),
    _s(
        "AWS_CONN_ID",
        "aws_default",
        "the Airflow connection to object storage (S3), for the Airflow-side steps, the local "
        "runner's steps and the reports (pods use their service account's identity)",
    ),
    _s(
        "KUBERNETES_CONN_ID",
        "kubernetes_default",
        "the Airflow connection to the cluster (the kubernetes runner and the deploy step)",
    ),
    _s("TRAINER_PYTHON", "./.venv-trainer/bin/python", "the local runner's interpreter"),
    _s(
        "GE_PYTHON",
        "./.venv-ge/bin/python",
        "the data-quality step's interpreter (Great Expectations)",
    ),
    _s("EXPECTATIONS", "./expectations", "the folder of the pipelines' expectation suites"),
    _s(
        "ALGORITHM_PACKAGES",
        "none",
        "comma-separated importable packages of more algorithms",
        steps=True,
    ),
    # Scheduling and retries
    _s(
        "<DAG_ID>_SCHEDULE",
        "@daily",
        "a pipeline's retraining schedule (cron or preset, with data intervals; `none`: manual "
        "runs only); its DAG starts paused. A tuning DAG has none unless set",
    ),
    _s(
        "<DAG_ID>_ON_DATASET_CHANGE",
        "false",
        "true: a pipeline also runs on every update of its dataset asset",
    ),
    _s("RETRIES", "2", "retries of a task that failed for another reason than bad input"),
    _s("RETRY_DELAY_SECONDS", "60", "first delay before a retry (doubling, at most an hour)"),
    _s("TASK_TIMEOUT_MINUTES", "1440", "a task running longer fails"),
    # Images and the cluster
    _s(
        "TRAINER_IMAGES",
        "the trainer image",
        "comma-separated images a run may choose (the first is the default)",
    ),
    _s(
        "TRAINER_IMAGE",
        "localhost/vision-pipelines-trainer:latest",
        "the default image when TRAINER_IMAGES is not set",
    ),
    _s("K8S_NAMESPACE", "default", "where step pods, Jobs, Services and InferenceServices go"),
    _s(
        "K8S_SERVICE_ACCOUNT",
        "the namespace's default",
        "the step pods' service account (their storage rights)",
    ),
    _s("K8S_NODE_SELECTOR", "{}", "JSON: the step pods' node selector (the GPU pool)"),
    _s("K8S_TOLERATIONS", "[]", "JSON: the step pods' tolerations"),
    _s(
        "K8S_RESOURCES",
        '{"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "32Gi"}}',
        "JSON: CPU and memory per step pod (GPUs come from the form)",
    ),
    _s("K8S_IMAGE_PULL_POLICY", "IfNotPresent", "Always, IfNotPresent or Never"),
    _s("K8S_AUTOMOUNT_TOKEN", "false", "true: mount the service account's API token in step pods"),
    _s(
        "K8S_MODEL_KEY_SECRET",
        "vision-pipelines-model-key",
        "the Secret whose `key` signs and checks models in the pods",
    ),
    _s(
        "K8S_SERVING_RESOURCES",
        '{"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}',
        "JSON: CPU and memory of the served champion's pods",
    ),
    _s("K8S_SERVING_GPUS", "0", "GPUs per served champion pod"),
    _s(
        "K8S_JOB_DEADLINE_SECONDS",
        "86400",
        "a multi-machine step whose pods are not all done by then fails",
    ),
    _s(
        "HEARTBEAT_TIMEOUT_SECONDS",
        "60",
        "a multi-machine step's workers give up on a silent one after this (the Job passes it)",
    ),
    _s(
        "KSERVE_SDK",
        "the bundled schema",
        "a KServe SDK wheel or folder whose schema checks InferenceServices",
    ),
    # Models and trust
    _s(
        "MODEL_KEY",
        "a key file generated on the Airflow machine",
        "the model-signing key (32 bytes or more); pods get it from K8S_MODEL_KEY_SECRET",
    ),
    _s(
        "MODEL_KEY_FILE",
        "$AIRFLOW_HOME/vision-pipelines-model.key",
        "where the generated key is kept",
    ),
    _s(
        "ALLOW_FOREIGN_MODELS",
        "unset",
        "1: load model archives this deployment did not sign",
        steps=True,
    ),
    _s("MODEL_MAX_MEMBERS", "10000", "files a model archive may hold", steps=True),
    _s("MODEL_MAX_BYTES", "17179869184", "bytes a model archive may unpack to", steps=True),
    _s(
        "EXTRA_ALLOWED_OPS",
        "none",
        "comma-separated TensorFlow ops a SavedModel may use beyond the allow-list",
        steps=True,
    ),
    _s(
        "TRUSTED_MODULES",
        "none",
        "comma-separated SHA-256 digests of hub modules runs may use",
        steps=True,
    ),
    _s(
        "TFHUB_MIRROR",
        "none",
        "a prefix (file:// or s3://) holding mirrored hub modules",
        steps=True,
    ),
    _s(
        "TFHUB_REGISTRY",
        "none",
        "a JSON file of more hub models (the registry's format)",
        steps=True,
    ),
    _s("IMAGENET_WEIGHTS", "none", "a file or folder of converted ImageNet weights", steps=True),
    # Limits of the data a run may bring
    _s(
        "MAX_IMAGE_SIDE",
        "2048",
        "largest image side a form or hyperparameter may ask for",
        steps=True,
    ),
    _s("MAX_BATCH_SIZE", "4096", "largest batch size", steps=True),
    _s("MAX_IMAGE_PIXELS", "89478485", "largest decoded image (pixels)", steps=True),
    _s("MAX_IMAGE_BYTES", "52428800", "largest encoded image (bytes)", steps=True),
    _s("MAX_EPOCHS", "10000", "most epochs", steps=True),
    _s("MAX_CLASSES", "100000", "most classes", steps=True),
    _s("MAX_MANIFEST_LINE_BYTES", "1048576", "longest manifest line", steps=True),
    _s("MAX_RECORD_BYTES", "268435456", "largest RecordIO record", steps=True),
    _s("MAX_EXPECTATIONS", "200", "most expectations in a suite"),
    _s("QUALITY_TIMEOUT_S", "600", "the data-quality step's time limit"),
    _s("QUALITY_MEMORY_MB", "4096", "the data-quality step's memory limit"),
    # Training input
    _s(
        "CACHE_BYTES",
        "2147483648",
        "decoded training data up to this size is cached in memory",
        steps=True,
    ),
    _s("READ_AHEAD_BYTES", "33554432", "Pipe mode's read-ahead", steps=True),
    _s("SHUFFLE_BUFFER_BYTES", "268435456", "image classification's shuffle buffer", steps=True),
    _s(
        "SEED",
        "unset",
        "seed every random number of a training run (repeatable runs, slower)",
        steps=True,
    ),
    # The endpoint
    _s("SERVE_MAX_PIXELS", "40000000", "largest image the endpoint decodes"),
    _s("SERVE_BYTES_IN_FLIGHT", "268435456", "request bytes the endpoint holds at once"),
    _s("SERVE_PIXELS_IN_FLIGHT", "4 requests' pixels", "decoded pixels the endpoint holds at once"),
    _s("SERVE_BODY_SECONDS", "30", "a request body must arrive within this"),
    _s("SERVE_IDLE_SECONDS", "15", "an idle connection is closed after this"),
)


def add_source(source: Callable[[str], str | None]) -> None:
    """Consult `source(name)` before the environment (the Airflow side's configuration)."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def setting_text(name: str) -> str | None:
    """The setting's text: the first source that has it, else its environment variable; None
    when it is unset or empty."""
    for source in _SOURCES:
        value = source(name)
        if value is not None and value.strip():
            return value.strip()
    value = os.environ.get(name, "").strip()
    return value or None


_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str, default: int | None = None, *, minimum: int = 1) -> int:
    """The whole number setting `name` (at least `minimum`); unset, the table's default, or
    `default` where the table's is a rule rather than a number (SERVE_PIXELS_IN_FLIGHT)."""
    value = setting_text(name)
    if value is None:
        return int(_BY_NAME[name].default) if default is None else default
    if not value.isdigit() or int(value) < minimum:
        raise InputError(f"setting {name}={value!r}: allowed: a whole number >= {minimum}")
    return int(value)


def step_environment() -> dict[str, str]:
    """The settings a step reads, as its environment variables, with the values the Airflow side
    has for them: what every step it starts is given."""
    return {
        s.name: value for s in SETTINGS if s.steps and (value := setting_text(s.name)) is not None
    }


def markdown_table() -> str:
    """The README's settings table."""
    lines = [
        "| setting (`[vision_pipelines]` key) | default | what it sets |",
        "| --- | --- | --- |",
    ]
    for s in SETTINGS:
        step = " Steps get it too." if s.steps else ""
        default = s.default.replace("|", "\\|")
        lines.append(f"| `{s.name}` (`{s.key}`) | `{default}` | {s.description}.{step} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
