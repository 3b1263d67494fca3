"""`python -m tasks.transform --model MODEL.tar.gz --input DIR --output OUT.jsonl`: batch transform.

Every .jpg/.jpeg/.png under DIR, recursively, in sorted order, one JSON line each, as the model's
algorithm predicts it; image-classification: {"source-ref": "<path relative to DIR>",
"prediction": [p0, p1, ...]} (per-class sigmoid probabilities for a multi-label model); with
`--accept 'application/json;verbose'` also "probabilities", "labels" and "predicted_label".
semantic-segmentation: {"source-ref": ..., "mask": "<OUT stem>_masks/<name>.png" (palette PNG
of class indices at the image's size, relative to OUT's folder), "class_fractions": {...}}, with
`--probabilities` also "probabilities" (a float16 HxWxC .npy). The
input may also be a `.lst` or an augmented manifest: then their images, in their order, named as
they name them; or a shard's `.inputs` listing (tasks/transform_shards.py): its images, named
as the transform of the whole input names them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.artifact import add_foreign_model_option
from tasks.contract import run_job
from tasks.steps.batch_prediction import ACCEPT, transform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.transform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz")
    parser.add_argument(
        "--input", type=Path, required=True, help="folder of images, a .lst or a manifest"
    )
    parser.add_argument("--output", type=Path, required=True, help="predictions file")
    parser.add_argument("--accept", choices=ACCEPT, default=ACCEPT[0])
    parser.add_argument(
        "--probabilities",
        action="store_true",
        help="segmentation: also per-pixel class probabilities, float16 HxWxC .npy per image",
    )
    parser.add_argument(
        "--encode-labels",
        action="store_true",
        help="segmentation: mask values through the training label map, not class indices",
    )
    parser.add_argument("--failure-file", type=Path, help="where to write the failure reason")
    add_foreign_model_option(parser)
    args = parser.parse_args(argv)
    return run_job(
        lambda: transform(
            args.model,
            args.input,
            args.output,
            args.accept,
            probabilities=args.probabilities,
            encode_labels=args.encode_labels,
        ),
        args.failure_file,
    )


if __name__ == "__main__":
    sys.exit(main())
