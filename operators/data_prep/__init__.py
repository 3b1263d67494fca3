"""Data-prep operators, one module per kind of data they prepare: thin adapters from Airflow
(templates, storage, XCom) to tasks/data."""

from operators.data_prep.class_folders import ClassFolderDatasetOperator
from operators.data_prep.lists import LstGenerationOperator, ManifestValidationOperator
from operators.data_prep.recordio import RecordIOPackOperator
from operators.data_prep.segmentation import LabelMapRemapOperator, SegmentationLayoutOperator

__all__ = [
    "ClassFolderDatasetOperator",
    "LabelMapRemapOperator",
    "LstGenerationOperator",
    "ManifestValidationOperator",
    "RecordIOPackOperator",
    "SegmentationLayoutOperator",
]
