"""The model ids image-classification-tf knows: hub handles, input size and per-model defaults.

`models.json` beside this file is the registry (the reference's model ids); a deployment adds
its own models, in the same format, with `VISION_PIPELINES_TFHUB_REGISTRY` (a JSON file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from tasks.errors import InputError
from tasks.settings import setting_text

REGISTRY_FILE = Path(__file__).with_name("models.json")
EXTRA_REGISTRY_ENV = "VISION_PIPELINES_TFHUB_REGISTRY"
Kind = Literal["feature_vector", "classification"]
KINDS: tuple[Kind, ...] = ("feature_vector", "classification")


class UnknownModelError(InputError):
    """A model id that is not in the registry."""


@dataclass(frozen=True)
class HubModel:
    """One pre-trained model: its id, hub handles (a feature vector to fine-tune, a classifier to
    use as is), the square input side it expects, and hyperparameter defaults of its own."""

    model_id: str
    name: str
    feature_vector: str
    classification: str
    input_size: int
    defaults: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    """The pinned digest (trust.module_digest) of each kind's SavedModel, if pinned."""

    def handle(self, kind: Kind) -> str:
        return self.feature_vector if kind == "feature_vector" else self.classification


def _read(path: Path) -> list[HubModel]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            HubModel(
                model_id=str(m["model_id"]),
                name=str(m.get("name", m["model_id"])),
                feature_vector=str(m["feature_vector"]),
                classification=str(m.get("classification", "")),
                input_size=int(m["input_size"]),
                defaults={str(k): str(v) for k, v in m.get("defaults", {}).items()},
                sha256={str(k): str(v).lower() for k, v in m.get("sha256", {}).items()},
            )
            for m in data["models"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"{path}: not a model registry ({type(e).__name__}: {e}); expected "
            '{"models": [{"model_id", "feature_vector", "input_size", "sha256": {kind: hex},'
            " ...}]}"
        ) from e


@cache
def _registry(extra: str) -> dict[str, HubModel]:
    models = _read(REGISTRY_FILE) + (_read(Path(extra)) if extra else [])
    return {m.model_id: m for m in models}


def registry() -> dict[str, HubModel]:
    """Every known model by id: the shipped registry, then the deployment's additions."""
    return _registry(setting_text(EXTRA_REGISTRY_ENV) or "")


def get_model(model_id: str) -> HubModel:
    """The registry entry of `model_id`; an unknown id lists the known ones."""
    models = registry()
    if model_id not in models:
        raise UnknownModelError(
            f"model id {model_id!r} is not in the model registry; "
            f"available: {', '.join(sorted(models))} (python -m tasks.hub list)"
        )
    return models[model_id]
