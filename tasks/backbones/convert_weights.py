"""`python -m tasks.backbones.convert_weights KERAS_WEIGHTS --num-layers N --output F`:
ImageNet weights of Keras' own ResNet50/101/152 (keras.applications, v1) in this project's layout,
for use_pretrained_model=1.

Keras' ResNets are the same v1 network (stride on the first 1x1 convolution, symmetric padding)
with three differences, all absorbed exactly: their convolutions carry biases (folded into the
following BatchNorm's moving mean), their BatchNorm epsilon is 1.001e-5 (folded into the moving
variance), and they take BGR pixels minus the ImageNet mean ("caffe" preprocessing) where ours
normalizes RGB by mean and std (folded into the first convolution's kernel).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np

from tasks.backbones.resnet import BN_EPSILON, RESNETS, RGB_STD, build_resnet
from tasks.backbones.weights import load_weights_exactly
from tasks.contract import run_job
from tasks.errors import InputError

KERAS_RESNETS = {
    50: keras.applications.ResNet50,
    101: keras.applications.ResNet101,
    152: keras.applications.ResNet152,
}


def _layer_pairs(num_layers: int) -> list[tuple[str, str, str]]:
    """(our convolution, our BatchNorm, Keras' prefix) for every convolution of the network."""
    pairs = [("stem_conv", "stem_bn", "conv1")]
    for stage, blocks in enumerate(RESNETS[num_layers].blocks, start=1):
        for b in range(1, blocks + 1):
            ours, theirs = f"stage{stage}_block{b}", f"conv{stage + 1}_block{b}"
            pairs += [(f"{ours}_conv{i}", f"{ours}_bn{i}", f"{theirs}_{i}") for i in (1, 2, 3)]
            if b == 1:
                pairs.append((f"{ours}_down_conv", f"{ours}_down_bn", f"{theirs}_0"))
    return pairs


def convert(source: keras.Model, num_layers: int) -> keras.Model:
    """Our ResNet (1000 classes) computing what `source` computes."""
    model = build_resnet(num_layers, image_shape=(3, 224, 224), num_classes=1000)
    for conv, bn, theirs in _layer_pairs(num_layers):
        kernel, bias = source.get_layer(f"{theirs}_conv").get_weights()
        gamma, beta, mean, variance = source.get_layer(f"{theirs}_bn").get_weights()
        epsilon = source.get_layer(f"{theirs}_bn").epsilon
        if conv == "stem_conv":  # ours: RGB normalized by mean and std; theirs: BGR minus mean
            kernel = kernel[:, :, ::-1, :] * np.asarray(RGB_STD, np.float32)[None, None, :, None]
        model.get_layer(conv).set_weights([kernel])
        model.get_layer(bn).set_weights(
            [gamma, beta, mean - bias, variance + (epsilon - BN_EPSILON)]
        )
    model.get_layer("fc").set_weights(source.get_layer("predictions").get_weights())
    return model


def convert_file(weights: Path, num_layers: int, output: Path) -> Path:
    if num_layers not in KERAS_RESNETS:
        raise InputError(
            f"num_layers must be one of {sorted(KERAS_RESNETS)} (Keras ships "
            f"ImageNet ResNets of those depths), got {num_layers}"
        )
    source = KERAS_RESNETS[num_layers](weights=None)
    load_weights_exactly(
        source,
        weights,
        what=f"{weights}: not the weights of "
        f"keras.applications.ResNet{num_layers} with its top layer",
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    convert(source, num_layers).save_weights(output)
    print(f"wrote {output}")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.backbones.convert_weights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "weights", type=Path, help="e.g. resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    )
    parser.add_argument("--num-layers", type=int, required=True, choices=sorted(KERAS_RESNETS))
    parser.add_argument(
        "--output", type=Path, required=True, help="e.g. weights/resnet50_v1_imagenet.weights.h5"
    )
    args = parser.parse_args(argv)
    return run_job(lambda: convert_file(args.weights, args.num_layers, args.output), None)


if __name__ == "__main__":
    sys.exit(main())
