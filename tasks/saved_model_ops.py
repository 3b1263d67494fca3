"""The second wall against models that are code: a SavedModel whose graph holds file-system,
process or I/O ops a vision model never needs is refused before it is loaded, whoever signed or
pinned it. Trainer environment (reads TensorFlow's protos)."""

from __future__ import annotations

from pathlib import Path

from tasks.errors import InputError

SAVED_MODEL_PB = "saved_model.pb"
MAX_GRAPH_BYTES = 2**31
DENIED_OPS = frozenset(
    {
        # files
        "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "FileSystemSetConfiguration",
        "Save", "SaveSlices", "Restore", "RestoreSlice", "LoadAndRemapMatrix",
        "GenerateVocabRemapping", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "RecordInput", "DecodeProtoV2", "EncodeProto",
        # readers and datasets that open paths
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "IdentityReader", "IdentityReaderV2", "LMDBReader",
        "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "LMDBDataset", "ExperimentalLMDBDataset", "CSVDataset",
        "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset", "ExperimentalSqlDataset",
        "SaveDataset", "SaveDatasetV2", "LoadDataset", "ExperimentalLoadDataset",
        "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SnapshotDataset",
        "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader",
        "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3",
        "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2",
        # summaries, debugging and printing (all can name a file)
        "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary",
        "WriteRawProtoSummary", "WriteScalarSummary", "WriteHistogramSummary",
        "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary", "ImportEvent",
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
        "DebugNumericSummary", "DebugNumericSummaryV2", "Print", "PrintV2",
        # Python callbacks
        "PyFunc", "PyFuncStateless", "EagerPyFunc",
    }
)  # fmt: skip
CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints"})
"""Allowed only in the functions TensorFlow writes to save and restore variables
(`__inference__traced_save_*`, `..._traced_restore_*`), which no other function may call."""
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


class UnsafeModelError(InputError):
    """A SavedModel graph holding ops that reach outside the model."""


def _is_checkpoint_function(name: str) -> bool:
    return "_traced_save_" in name or "_traced_restore_" in name


def _problems(graph) -> list[str]:
    found = []
    checkpoint_functions = {
        f.signature.name for f in graph.library.function
        if _is_checkpoint_function(f.signature.name)
    }  # fmt: skip
    for function in graph.library.function:
        name = function.signature.name
        for node in function.node_def:
            if node.op in DENIED_OPS or (
                node.op in CHECKPOINT_OPS and name not in checkpoint_functions
            ):
                found.append(f"{node.op} in function {name}")
            if node.op in CALL_OPS and name not in checkpoint_functions:
                called = node.attr["f"].func.name
                if called in checkpoint_functions:
                    found.append(f"a call of {called} in function {name}")
    found += [f"{node.op} in the graph" for node in graph.node if node.op in DENIED_OPS]
    return found


def check_saved_model(folder: Path, source: str) -> None:
    """Refuse the SavedModel in `folder` if its graphs hold a denied op; one sentence naming the
    ops and where they are."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = folder / SAVED_MODEL_PB
    try:
        if path.stat().st_size > MAX_GRAPH_BYTES:
            raise UnsafeModelError(f"{source}: {SAVED_MODEL_PB} is over 2 GiB; not loaded")
        saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    except (OSError, DecodeError) as e:
        raise InputError(f"{source}: {SAVED_MODEL_PB} is not a readable SavedModel ({e})") from e
    found = sorted({p for meta in saved.meta_graphs for p in _problems(meta.graph_def)})
    if found:
        shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        raise UnsafeModelError(
            f"{source}: the SavedModel's graph holds ops a vision model never needs and that "
            f"reach files or processes ({shown}); refused before loading (a SavedModel is code)"
        )


def load_saved_model(folder: Path, source: str | None = None):
    """tf.saved_model.load of a SavedModel that passed check_saved_model."""
    import tensorflow as tf

    check_saved_model(folder, source or str(folder))
    return tf.saved_model.load(str(folder))
