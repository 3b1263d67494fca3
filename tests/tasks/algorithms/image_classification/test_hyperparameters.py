from __future__ import annotations

import pytest

from tasks.algorithms.image_classification.hyperparameters import (
    TABLE,
    ImageClassificationHyperparameters,
)
from tasks.hyperparameters import HyperparameterError

REQUIRED = {"num_classes": "4", "num_training_samples": "100"}


def parse(**values):
    return ImageClassificationHyperparameters.from_strings({**REQUIRED, **values})


def test_defaults_are_the_reference_defaults():
    hp = parse()
    assert (
        hp.num_layers,
        hp.image_shape,
        hp.epochs,
        hp.learning_rate,
        hp.optimizer,
        hp.mini_batch_size,
        hp.momentum,
        hp.weight_decay,
    ) == (152, (3, 224, 224), 30, 0.1, "sgd", 32, 0.0, 0.0001)
    assert hp.to_strings()["image_shape"] == "3,224,224"


def test_every_reference_name_is_accepted():
    names = {p.name for p in TABLE}
    assert names >= {
        "use_pretrained_model",
        "augmentation_type",
        "top_k",
        "checkpoint_frequency",
        "early_stopping_tolerance",
        "multi_label",
        "precision_dtype",
        "kv_store",
        "beta_1",
        "beta_2",
        "eps",
        "gamma",
        "lr_scheduler_step",
        "resize",
    }
    hp = parse(
        augmentation_type="crop_color_transform",
        multi_label="1",
        kv_store="dist_sync",
        precision_dtype="float16",
        use_pretrained_model="1",
        top_k="3",
        lr_scheduler_step="10,20",
        early_stopping="True",
    )
    assert hp.lr_scheduler_step == (10, 20) and hp.early_stopping is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"num_classes": "0"}, "'num_classes' got '0'; allowed: a positive integer"),
        ({"image_shape": "224,224"}, "'image_shape' got '224,224'"),
        (
            {"image_shape": "3,60000,60000"},
            "'image_shape' got '3,60000,60000'; allowed: .*8 to 2048",
        ),
        ({"mini_batch_size": "1000000"}, "allowed: an integer from 1 to 4096"),
        ({"optimizer": "lamb"}, "'optimizer' got 'lamb'; allowed: one of sgd, adam, rmsprop, nag"),
        ({"lr_scheduler_step": "20,10"}, "strictly increasing"),
        ({"checkpoint_frequency": "40"}, "at most epochs (30)"),
        ({"kv_store": "dist_async"}, "asynchronous parameter updates are not supported"),
        ({"top_k": "1"}, "'top_k' got '1'; allowed: an integer greater than 1"),
        ({"early_stopping": "maybe"}, "'early_stopping' got 'maybe'; allowed: True or False"),
    ],
)
def test_bad_values_name_the_parameter_value_and_what_is_allowed(values, message):
    with pytest.raises(HyperparameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(**values)


def test_keys_the_managed_service_adds_are_not_hyperparameters():
    hp = parse(_tuning_objective_metric="validation:accuracy", sagemaker_region="us-east-1")
    assert hp.num_classes == 4
