"""The second wall against models that are code: a SavedModel runs only if every op of its graph
is on the reviewed allow-list (`saved_model_allowed_ops.txt`: what our own models and the
registry's feature-vector families need), whoever signed or pinned it. Checkpoint ops (SaveV2,
RestoreV2, ...) are allowed only in the save and restore functions that the SavedModel's own
saver names, and nothing else may call those. Trainer environment (reads TensorFlow's protos).

`python -m tasks.saved_model_ops FOLDER...` lists the ops of SavedModels (to review the list)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from tasks.errors import InputError
from tasks.settings import setting_text

SAVED_MODEL_PB = "saved_model.pb"
MAX_GRAPH_BYTES = 2**31
ALLOWED_OPS_FILE = Path(__file__).with_name("saved_model_allowed_ops.txt")
EXTRA_OPS_ENV = "VISION_PIPELINES_EXTRA_ALLOWED_OPS"
"""A deployment's own additions (a file in the list's format), for a module family of its own."""
CHECKPOINT_FUNCTION = re.compile(r"__inference__traced_(save|restore)_\d+")
"""The exact names TensorFlow gives the save and restore functions it traces for a SavedModel."""
CHECKPOINT_OPS = frozenset(
    {
        "SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin",
        "StaticRegexFullMatch", "DisableCopyOnRead", "Select", "Pack", "Const", "Identity",
        "NoOp", "ReadVariableOp", "AssignVariableOp",
    }
)  # fmt: skip
"""What TensorFlow's traced save and restore functions use (all they may use)."""


class UnsafeModelError(InputError):
    """A SavedModel graph holding ops that are not on the allow-list."""


def read_ops(path: Path) -> frozenset[str]:
    """An op list: one op per line, `#` starts a comment."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return frozenset(line for line in lines if line)


def allowed_ops() -> frozenset[str]:
    """The reviewed allow-list and the deployment's additions (EXTRA_OPS_ENV)."""
    extra = setting_text(EXTRA_OPS_ENV)
    return read_ops(ALLOWED_OPS_FILE) | (read_ops(Path(extra)) if extra else frozenset())


def _called(node) -> set[str]:
    """The functions a node names in its attributes (calls, branches, bodies)."""
    names = set()
    for value in node.attr.values():
        if value.HasField("func"):
            names.add(value.func.name)
        names.update(f.name for f in value.list.func)
    return names


def _saver_functions(meta) -> set[str]:
    """The save and restore functions the SavedModel's saver runs (by its node names)."""
    saver = meta.saver_def
    names = {saver.save_tensor_name.split(":")[0], saver.restore_op_name.split(":")[0]} - {""}
    return {
        called
        for node in meta.graph_def.node
        if node.name in names
        for called in _called(node)
        if CHECKPOINT_FUNCTION.fullmatch(called)
    }


def problems(meta, allowed: frozenset[str]) -> list[str]:
    """Each op outside the allow-list, and each misuse of a checkpoint function, as a phrase."""
    graph = meta.graph_def
    checkpoint = _saver_functions(meta)
    found = []
    for function in graph.library.function:
        name = function.signature.name
        permitted = CHECKPOINT_OPS if name in checkpoint else allowed
        for node in function.node_def:
            if node.op not in permitted:
                found.append(f"{node.op} in function {name}")
            found += [f"a call of {c} in function {name}" for c in _called(node) & checkpoint]
    for node in graph.node:
        if node.op not in allowed:
            found.append(f"{node.op} in the graph")
    exposed = checkpoint & set(meta.object_graph_def.concrete_functions)
    found += [f"{name} callable from the model's objects" for name in sorted(exposed)]
    return found


def model_ops(folder: Path) -> set[str]:
    """The ops of the SavedModel in `folder` that the allow-list must hold: all of them but
    those of its saver's checkpoint functions."""
    saved = _read(folder, str(folder))
    found = set()
    for meta in saved.meta_graphs:
        checkpoint = _saver_functions(meta)
        found |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            if function.signature.name not in checkpoint:
                found |= {node.op for node in function.node_def}
    return found


def _read(folder: Path, source: str):
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = folder / SAVED_MODEL_PB
    try:
        if path.stat().st_size > MAX_GRAPH_BYTES:
            raise UnsafeModelError(f"{source}: {SAVED_MODEL_PB} is over 2 GiB; not loaded")
        return saved_model_pb2.SavedModel.FromString(path.read_bytes())
    except (OSError, DecodeError) as e:
        raise InputError(f"{source}: {SAVED_MODEL_PB} is not a readable SavedModel ({e})") from e


def check_saved_model(folder: Path, source: str) -> None:
    """Refuse the SavedModel in `folder` unless every op is allowed; one sentence naming the ops
    and the functions they are in. `folder` must be the step's private copy (private_copy), the
    same files the loader reads next."""
    saved = _read(folder, source)
    allowed = allowed_ops()
    found = sorted({p for meta in saved.meta_graphs for p in problems(meta, allowed)})
    if found:
        first = {}  # each op (or misuse) once, with the first function it is in
        for phrase in found:
            first.setdefault(phrase.split(" in ")[0], phrase)
        shown = "; ".join(list(first.values())[:8])
        shown += f"; and {len(first) - 8} more" if len(first) > 8 else ""
        raise UnsafeModelError(
            f"{source}: the SavedModel's graph holds ops outside the allow-list of what vision "
            f"models need ({shown}); refused before loading (a SavedModel is code; the list is "
            f"{ALLOWED_OPS_FILE.name} of the trainer)"
        )


def load_saved_model(folder: Path, source: str | None = None):
    """tf.saved_model.load of a SavedModel in a step-owned folder that passed
    check_saved_model."""
    import tensorflow as tf

    check_saved_model(folder, source or str(folder))
    return tf.saved_model.load(str(folder))


def main(argv: Iterable[str]) -> int:
    for folder in argv:
        print(f"# {folder}")
        print("\n".join(sorted(model_ops(Path(folder)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
