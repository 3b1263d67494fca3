"""Serving on this machine: no serving engine to drive, so the deploy step logs the commands that
serve the champion here: our endpoint (the managed service's contract) or TensorFlow Serving over
its versions."""

from __future__ import annotations

from typing import Any

from operators.deployers.base import Deployer, Deployment
from operators.paths import PROJECT_ROOT
from operators.runners.local import trainer_python


class LocalDeployer(Deployer):
    name = "local"

    def deploy(self, deployment: Deployment, log: Any) -> dict[str, Any]:
        python = f"PYTHONPATH={PROJECT_ROOT} {trainer_python(deployment.environment)}"
        command = f"{python} -m tasks.serve --model {deployment.model_uri} --port 8080"
        log.info("serve the champion with: %s", command)
        log.info(
            "or with TensorFlow Serving: --model_name=%s --model_base_path=%s",
            deployment.pipeline,
            deployment.model_base_path,
        )
        return {"serve_command": command}


DEPLOYER = LocalDeployer()
