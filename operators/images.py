"""The container images a run may choose: the deployment's allow-list."""

from __future__ import annotations

from operators.refusals import refuse
from tasks.algorithms import TRAINER, Environment
from tasks.settings import setting_text


def allowed_images(environment: Environment = TRAINER) -> list[str]:
    """The images a run may choose (`VISION_PIPELINES_TRAINER_IMAGES`, comma-separated; else
    `VISION_PIPELINES_TRAINER_IMAGE` or the algorithm's): the first is the default."""
    listed = setting_text("VISION_PIPELINES_TRAINER_IMAGES") or ""
    images = [i.strip() for i in listed.split(",") if i.strip()]
    return images or [setting_text("VISION_PIPELINES_TRAINER_IMAGE") or environment.image]


def check_image(image: str, environment: Environment = TRAINER) -> str:
    """`image` if the deployment allows it; who may trigger a DAG must not pick any image to
    run under the pods' service account and storage rights."""
    allowed = allowed_images(environment)
    if image not in allowed:
        raise refuse(
            f"trainer image {image!r} is not allowed; this deployment allows "
            f"{', '.join(allowed)} (VISION_PIPELINES_TRAINER_IMAGES)"
        )
    return image
