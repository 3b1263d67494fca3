"""`python -m tasks.hub list | mirror | package`: the pre-trained models of image-classification-tf.

list      every model id of the registry: input size, whether it is available offline here
          (TFHUB_CACHE_DIR or VISION_PIPELINES_TFHUB_MIRROR), name
mirror    copy a downloaded hub model (SavedModel folder or .tar.gz) into the mirror
digest    the SHA-256 to pin a module with (registry "sha256", VISION_PIPELINES_TRUSTED_MODULES)
package   a pre-trained classifier as a model.tar.gz for evaluate and batch transform, as is
pretrain  make a small feature vector module here (generated shapes), mirror it and pin it in a
          deployment registry file: the embedded deployment's default model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.algorithms.image_classification_tf.hub.mirror import (
    MIRROR_ENV,
    describe_registry,
    digest_of,
    mirror,
)
from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV, KINDS
from tasks.contract import run_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the registry's model ids")
    copy = commands.add_parser("mirror", help="copy a downloaded model into the mirror")
    copy.add_argument("model_id")
    copy.add_argument("source", type=Path, help="SavedModel folder or .tar.gz (a download)")
    copy.add_argument("--kind", choices=KINDS, default="feature_vector")
    copy.add_argument("--to", help=f"mirror prefix (default ${MIRROR_ENV})")
    pin = commands.add_parser("digest", help="the SHA-256 that pins a module")
    pin.add_argument("source", type=Path, help="SavedModel folder or .tar.gz")
    package = commands.add_parser("package", help="a pre-trained classifier, as is")
    package.add_argument("model_id")
    package.add_argument("--labels", type=Path, required=True, help="one label per line")
    package.add_argument("--output", type=Path, required=True, help="model.tar.gz to write")
    package.add_argument("--model", type=Path, help="the classifier's SavedModel (or .tar.gz)")
    made = commands.add_parser("pretrain", help="a small module made here, mirrored and pinned")
    made.add_argument("--to", required=True, help="mirror prefix (file:// or s3://)")
    made.add_argument(
        "--registry",
        type=Path,
        required=True,
        help=f"registry file to add it to (${EXTRA_REGISTRY_ENV})",
    )
    made.add_argument("--epochs", type=int, default=10)
    made.add_argument("--per-class", type=int, default=100, help="generated images per class")
    args = parser.parse_args(argv)
    if args.command == "list":
        return run_job(lambda: print(describe_registry(), end=""), None)
    if args.command == "mirror":
        return run_job(
            lambda: print(mirror(args.model_id, args.source, kind=args.kind, to=args.to)), None
        )
    if args.command == "digest":
        return run_job(lambda: print(digest_of(args.source)), None)

    if args.command == "pretrain":

        def run_pretrain() -> None:
            from tasks.algorithms.image_classification_tf.hub.pretrain import (
                MODEL_ID,
                publish_pretrained,
            )

            uri = publish_pretrained(
                args.to, args.registry, epochs=args.epochs, per_class=args.per_class
            )
            print(f"{MODEL_ID}: {uri} (pinned in {args.registry})")

        return run_job(run_pretrain, None)

    def run_package() -> None:
        from tasks.algorithms.image_classification_tf.as_is import package_classifier

        classes = package_classifier(args.model_id, args.labels, args.output, model=args.model)
        print(f"wrote {args.output} ({args.model_id} as is, {classes} classes)")

    return run_job(run_package, None)


if __name__ == "__main__":
    sys.exit(main())
