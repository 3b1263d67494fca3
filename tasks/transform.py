"""`python -m tasks.transform --model MODEL.tar.gz --input DIR --output OUT.jsonl`: batch transform.

Every .jpg/.jpeg/.png under DIR, recursively, in sorted order, one JSON line each:
{"source-ref": "<path relative to DIR>", "prediction": [p0, p1, ...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tasks.contract import run_job
from tasks.inference import LoadedModel, find_images, predict_images, temporary_output

ACCEPT = ("application/jsonlines", "application/json")


def transform(model_path: Path, input_dir: Path, output: Path, accept: str = ACCEPT[0]) -> int:
    """Write the predictions file atomically; return the number of images."""
    images = find_images(input_dir)
    refs = ((p.relative_to(input_dir).as_posix(), p.read_bytes()) for p in images)
    tmp = temporary_output(output)
    with LoadedModel(model_path) as model:
        rows = (
            {"source-ref": name, "prediction": [float(p) for p in probabilities]}
            for name, probabilities in predict_images(model, refs, total=len(images))
        )
        with open(tmp, "w", encoding="utf-8") as f:
            if accept == "application/json":
                json.dump(list(rows), f)
            else:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
    tmp.replace(output)
    print(f"wrote {len(images)} predictions to {output}", flush=True)
    return len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.transform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz")
    parser.add_argument("--input", type=Path, required=True, help="folder of images")
    parser.add_argument("--output", type=Path, required=True, help="predictions file")
    parser.add_argument("--accept", choices=ACCEPT, default=ACCEPT[0])
    parser.add_argument("--failure-file", type=Path, help="where to write the failure reason")
    args = parser.parse_args(argv)
    return run_job(
        lambda: transform(args.model, args.input, args.output, args.accept), args.failure_file
    )


if __name__ == "__main__":
    sys.exit(main())
