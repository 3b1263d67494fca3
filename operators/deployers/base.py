"""What every deployer shares: the champion to serve and the interface a deployer implements.

A deployer serves a pipeline's champion where the pipeline's steps run (the deploy step picks the
one named like the run's runner). Each is one public module of this package defining `DEPLOYER`,
or an entry point of the group `vision_pipelines.deployers` in another distribution.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from tasks.algorithms import Environment


@dataclass(frozen=True)
class Deployment:
    """A champion to serve: its archive and its SavedModel versions in TF Serving's layout."""

    pipeline: str
    model_uri: str
    run_id: str
    version: int
    model_base_path: str
    """`<models_uri>/serving/<pipeline>`, holding `<version>/saved_model.pb`."""
    environment: Environment


class Deployer(ABC):
    """Serves a champion somewhere; `deploy` returns what the deploy step records
    (`inference_service`: a resource, also written as inferenceservice.yaml)."""

    name: ClassVar[str]

    @abstractmethod
    def deploy(self, deployment: Deployment, log: Any) -> dict[str, Any]: ...
