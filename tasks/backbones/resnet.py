"""ResNet v1 in Keras 3 (keras.layers only), with MXNet Gluon's conventions, from a depth registry.

BatchNorm uses Gluon's momentum 0.9 and epsilon 1e-5 (see algorithms.md: Keras' 0.99 / 1e-3 lag at
high learning rates on small datasets). Inputs are RGB (or grey) pixel values in [0, 255]; the
model normalizes them itself, so serving only decodes and resizes.
"""

from __future__ import annotations

import concurrent.futures
import functools
from dataclasses import dataclass

import keras
from keras import layers

from tasks.backbones.resnet_depths import CIFAR_DEPTHS

BN_MOMENTUM, BN_EPSILON = 0.9, 1e-5
RGB_MEAN = (123.68, 116.779, 103.939)
RGB_STD = (58.393, 57.12, 57.375)
OUTPUT_STRIDES = (None, 8, 16, 32)


@dataclass(frozen=True)
class ResNetSpec:
    """Block type, blocks per stage and channels per stage for one depth."""

    bottleneck: bool
    blocks: tuple[int, ...]
    channels: tuple[int, ...]
    small_images: bool


def _imagenet(bottleneck: bool, *blocks: int) -> ResNetSpec:
    channels = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)
    return ResNetSpec(bottleneck, blocks, channels, small_images=False)


def _cifar(depth: int) -> ResNetSpec:
    n = (depth - 2) // 6
    return ResNetSpec(False, (n, n, n), (16, 32, 64), small_images=True)


RESNETS: dict[int, ResNetSpec] = {
    18: _imagenet(False, 2, 2, 2, 2),
    34: _imagenet(False, 3, 4, 6, 3),
    50: _imagenet(True, 3, 4, 6, 3),
    101: _imagenet(True, 3, 4, 23, 3),
    152: _imagenet(True, 3, 8, 36, 3),
    200: _imagenet(True, 3, 24, 36, 3),
    **{d: _cifar(d) for d in CIFAR_DEPTHS},
}


def _dilated_conv_gradient_runs() -> bool:
    import tensorflow as tf

    x, k = tf.ones([1, 5, 5, 1]), tf.ones([3, 3, 1, 1])
    try:
        with tf.GradientTape() as tape:
            tape.watch(k)
            y = tf.nn.conv2d(x, k, strides=1, padding="SAME", dilations=2)
        tape.gradient(y, k)
    except tf.errors.InvalidArgumentError:
        return False
    return True


@functools.cache
def native_dilated_conv_trains() -> bool:
    """Whether TensorFlow's own dilated Conv2D has a gradient on this machine's devices (its
    CPU kernel has one only with oneDNN, which needs AVX-512): a tiny probe, once, in a thread
    of its own, which runs eagerly even when asked while a graph is traced (init_scope would
    pause the gradient tape)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_dilated_conv_gradient_runs).result()


@keras.saving.register_keras_serializable("vision_pipelines")
class AtrousConv2D(layers.Conv2D):
    """A dilated Conv2D that runs as TensorFlow's own dilated Conv2D op. Keras' TensorFlow
    backend dilates through tf.nn.convolution, i.e. space-to-batch, which on CPU made a 3x3
    rate-36 convolution's training step ~100x slower (7.4 s against 0.07 s, 8x8x2048 input).
    Where TensorFlow cannot train its dilated Conv2D (a CPU without oneDNN: "Current CPU
    implementations do not yet support dilation rates larger than 1" in Conv2DBackpropFilter),
    a "same" convolution with an odd kernel runs as one 1x1 convolution over the kernel's
    shifted taps (2.6x faster than space-to-batch for FCN ResNet-50's training step on such a
    CPU); other backends, strided and other convolutions keep Keras' own op."""

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow" or tuple(self.strides) != (1, 1):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        if native_dilated_conv_trains():
            return tf.nn.conv2d(
                inputs,
                kernel,
                strides=1,
                padding=self.padding.upper(),
                dilations=self.dilation_rate,
            )
        kh, kw, channels, filters = kernel.shape
        if self.padding != "same" or kh % 2 == 0 or kw % 2 == 0:
            return super().convolution_op(inputs, kernel)
        return _shifted_taps_conv(inputs, kernel, self.dilation_rate)


def _shifted_taps_conv(inputs, kernel, rates: tuple[int, int]):
    """A dilated "same" convolution as a 1x1 convolution over the kernel's taps, each the input
    shifted by its offset (zero-padded): the same sums, through ops every CPU can train."""
    import tensorflow as tf

    kh, kw, channels, filters = kernel.shape
    (rh, rw), (ph, pw) = rates, ((kh - 1) // 2 * rates[0], (kw - 1) // 2 * rates[1])
    padded = tf.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
    taps = [
        padded[:, i * rh : i * rh + height, j * rw : j * rw + width, :]
        for i in range(kh)
        for j in range(kw)
    ]
    flat = tf.reshape(kernel, [1, 1, kh * kw * channels, filters])
    return tf.nn.conv2d(tf.concat(taps, axis=-1), flat, strides=1, padding="VALID")


def conv2d(filters: int, kernel: int, *, dilation: int = 1, **kwargs) -> layers.Conv2D:
    """Conv2D, or AtrousConv2D when dilated."""
    kind = AtrousConv2D if dilation > 1 else layers.Conv2D
    return kind(filters, kernel, dilation_rate=dilation, **kwargs)


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _conv(x, filters: int, kernel: int, stride: int, name: str, dilation: int = 1):
    """A bias-free convolution; strided ones pad symmetrically (kernel // 2 on every side) as
    Gluon and Keras' own ResNets do, where TensorFlow's "same" would pad one side more."""
    padding = "same"
    if stride > 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return conv2d(
        filters,
        kernel,
        strides=stride,
        padding=padding,
        dilation=dilation,
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def _block(
    x, filters: int, stride: int, *, bottleneck: bool, downsample: bool, dilation: int, name: str
):
    shortcut = x
    if downsample:
        shortcut = _bn(f"{name}_down_bn")(_conv(x, filters, 1, stride, f"{name}_down_conv"))
    if bottleneck:
        y = _conv(x, filters // 4, 1, stride, f"{name}_conv1")
        y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
        y = _conv(y, filters // 4, 3, 1, f"{name}_conv2", dilation)
        y = layers.ReLU(name=f"{name}_relu2")(_bn(f"{name}_bn2")(y))
        y = _bn(f"{name}_bn3")(_conv(y, filters, 1, 1, f"{name}_conv3"))
    else:
        y = _conv(x, filters, 3, stride, f"{name}_conv1", 1 if stride > 1 else dilation)
        y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
        y = _bn(f"{name}_bn2")(_conv(y, filters, 3, 1, f"{name}_conv2", dilation))
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet_stages(inputs, num_layers: int, *, output_stride: int | None = None) -> list:
    """The outputs of every stage of ResNet v1 `num_layers` on RGB/grey pixel `inputs`.

    `output_stride` 8 or 16 replaces the striding of the last stages by dilation, as GluonCV's
    dilated ResNets do for segmentation (a stage dilated d starts with one block of dilation
    d / 2); None keeps the classifier's strides (32 for ImageNet nets, 4 for CIFAR nets)."""
    if num_layers not in RESNETS:
        raise ValueError(f"num_layers must be one of {sorted(RESNETS)}, got {num_layers}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
    spec = RESNETS[num_layers]
    channels = inputs.shape[-1]
    mean, std = (RGB_MEAN, RGB_STD) if channels == 3 else ((117.0,), (57.6,))
    x = layers.Normalization(mean=list(mean), variance=[s * s for s in std], name="normalize")(
        inputs
    )
    if spec.small_images:
        x = layers.ReLU(name="stem_relu")(
            _bn("stem_bn")(_conv(x, spec.channels[0], 3, 1, "stem_conv"))
        )
        current = 1
    else:
        x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(_conv(x, 64, 7, 2, "stem_conv")))
        # After the ReLU, zero padding acts as Gluon's max-pool padding (values are >= 0).
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
        current = 4
    in_channels = spec.channels[0] if spec.small_images else 64
    dilation, outputs = 1, []
    for stage, (blocks, filters) in enumerate(zip(spec.blocks, spec.channels, strict=True), 1):
        stride = 2 if stage > 1 else 1
        if stride > 1 and output_stride is not None and current * stride > output_stride:
            stride, dilation = 1, dilation * 2
        current *= stride
        for b in range(blocks):
            x = _block(
                x,
                filters,
                stride if b == 0 else 1,
                bottleneck=spec.bottleneck,
                downsample=b == 0 and (stride != 1 or in_channels != filters),
                dilation=max(1, dilation // 2) if b == 0 else dilation,
                name=f"stage{stage}_block{b + 1}",
            )
            in_channels = filters
        outputs.append(x)
    return outputs


def _input(image_shape: tuple[int, int, int]) -> keras.KerasTensor:
    channels, height, width = image_shape
    return keras.Input((height, width, channels), name="image")


def build_resnet(
    num_layers: int,
    *,
    image_shape: tuple[int, int, int],
    num_classes: int,
    output_stride: int | None = None,
) -> keras.Model:
    """ResNet v1 of `num_layers` for CHW `image_shape`; outputs logits of `num_classes`."""
    inputs = _input(image_shape)
    x = resnet_stages(inputs, num_layers, output_stride=output_stride)[-1]
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="fc", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"resnet{num_layers}_v1")


def build_encoder(
    num_layers: int, *, image_shape: tuple[int, int, int], output_stride: int | None = 8
) -> keras.Model:
    """The ResNet without its head: one output per stage (layer names as in `build_resnet`, so
    a classifier's weights load into it by name)."""
    inputs = _input(image_shape)
    outputs = resnet_stages(inputs, num_layers, output_stride=output_stride)
    return keras.Model(inputs, outputs, name=f"resnet{num_layers}_v1_encoder")
