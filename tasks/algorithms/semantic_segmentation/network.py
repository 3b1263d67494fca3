"""FCN, PSP and DeepLabV3 on a dilated ResNet (output stride 8), as GluonCV builds them.

The encoder is our ResNet v1 (tasks.backbones.resnet) with layers 3 and 4 dilated 2
and 4 instead of strided. Every head has GluonCV's auxiliary FCN head on layer 3 (loss weight
0.2, training only). Logits are resized bilinearly to the input size, so one network serves any
image size. The training network outputs main and auxiliary logits side by side on the channel
axis (`2 * num_classes` channels, see `SegmentationLoss`); `inference_network` keeps the main
ones only.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tasks.backbones.resnet import BN_EPSILON, BN_MOMENTUM, conv2d, resnet_stages

AUX_WEIGHT = 0.2
PSP_BINS = (1, 2, 3, 6)
ASPP_RATES = (12, 24, 36)
LOGITS = "logits"


@keras.saving.register_keras_serializable("vision_pipelines")
class ResizeLike(layers.Layer):
    """Bilinear resize of the first input to the height and width of the second."""

    def call(self, inputs):
        x, like = inputs
        shape = ops.shape(like)
        if keras.backend.backend() == "tensorflow":
            # keras.ops checks the size with Python comparisons, which a size known only
            # when the graph runs (any input size) cannot answer.
            import tensorflow as tf

            resized = tf.image.resize(x, (shape[1], shape[2]), method="bilinear")
            return tf.cast(resized, x.dtype)  # float32 out whatever came in (mixed precision)
        return ops.image.resize(x, (shape[1], shape[2]), interpolation="bilinear")

    def compute_output_shape(self, input_shapes):
        x, like = input_shapes
        return (x[0], like[1], like[2], x[3])


@keras.saving.register_keras_serializable("vision_pipelines")
class AdaptiveAveragePooling2D(layers.Layer):
    """Average pooling to a `bins` x `bins` grid for any input size (bins overlap where the
    size does not divide, as in PyTorch's and MXNet's adaptive pooling), as two averaging
    matrices applied to the rows and the columns: a matmul each way, where slicing every
    cell cost a full-size gradient per cell."""

    def __init__(self, bins: int, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins

    def get_config(self) -> dict:
        return {**super().get_config(), "bins": self.bins}

    def _averaging(self, size, dtype):
        """[bins, size]: row i averages the cells of bin i along an axis of `size`."""
        n = self.bins
        i = ops.arange(n)
        start, end = (i * size) // n, ((i + 1) * size + n - 1) // n
        at = ops.arange(size)[None, :]
        inside = ops.logical_and(at >= start[:, None], at < end[:, None])
        return ops.cast(inside, dtype) / ops.cast(end - start, dtype)[:, None]

    def call(self, x):
        shape = ops.shape(x)
        rows = self._averaging(shape[1], x.dtype)
        columns = self._averaging(shape[2], x.dtype)
        # [bins, h] @ [batch, h, w * c], then [bins, w] @ [batch, bins, w, c]: no transposes.
        x = ops.matmul(rows, ops.reshape(x, (shape[0], shape[1], -1)))
        x = ops.reshape(x, (shape[0], self.bins, shape[2], shape[3]))
        return ops.matmul(columns, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bins, self.bins, input_shape[3])


def _conv_bn_relu(x, filters: int, kernel: int, name: str, dilation: int = 1):
    x = conv2d(
        filters,
        kernel,
        padding="same",
        dilation=dilation,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _classifier(x, num_classes: int, name: str):
    return layers.Conv2D(num_classes, 1, name=f"{name}_classifier")(x)


def fcn_head(x, num_classes: int, name: str):
    """GluonCV's _FCNHead: 3x3 conv to a quarter of the channels, BN, ReLU, dropout 0.1, 1x1."""
    x = _conv_bn_relu(x, x.shape[-1] // 4, 3, f"{name}_block")
    x = layers.Dropout(0.1, name=f"{name}_dropout")(x)
    return _classifier(x, num_classes, name)


def psp_head(x, num_classes: int, name: str):
    """Pyramid pooling (bins 1, 2, 3, 6; 1x1 conv to a quarter of the channels each, resized
    back), concatenated with the features, then 3x3 conv to 512, dropout 0.1, 1x1."""
    reduced = x.shape[-1] // 4
    branches = [x]
    for bins in PSP_BINS:
        y = AdaptiveAveragePooling2D(bins, name=f"{name}_pool{bins}")(x)
        y = _conv_bn_relu(y, reduced, 1, f"{name}_pool{bins}")
        branches.append(ResizeLike(name=f"{name}_pool{bins}_resize")([y, x]))
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    x = _conv_bn_relu(x, 512, 3, f"{name}_block")
    x = layers.Dropout(0.1, name=f"{name}_dropout")(x)
    return _classifier(x, num_classes, name)


def deeplab_head(x, num_classes: int, name: str):
    """ASPP (1x1, 3x3 at rates 12/24/36, image pooling; 256 each), 1x1 projection with dropout
    0.5, then 3x3 conv 256, dropout 0.1, 1x1."""
    branches = [_conv_bn_relu(x, 256, 1, f"{name}_aspp0")]
    for i, rate in enumerate(ASPP_RATES, 1):
        branches.append(_conv_bn_relu(x, 256, 3, f"{name}_aspp{i}", dilation=rate))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_image_pool")(x)
    pooled = _conv_bn_relu(pooled, 256, 1, f"{name}_image_pool")
    branches.append(ResizeLike(name=f"{name}_image_pool_resize")([pooled, x]))
    x = layers.Concatenate(name=f"{name}_aspp_concat")(branches)
    x = _conv_bn_relu(x, 256, 1, f"{name}_project")
    x = layers.Dropout(0.5, name=f"{name}_project_dropout")(x)
    x = _conv_bn_relu(x, 256, 3, f"{name}_block")
    x = layers.Dropout(0.1, name=f"{name}_dropout")(x)
    return _classifier(x, num_classes, name)


HEADS = {"fcn": fcn_head, "psp": psp_head, "deeplab": deeplab_head}


def build_network(head: str, depth: int, num_classes: int, *, channels: int = 3) -> keras.Model:
    """The training network: images of any size (pixels 0..255) -> main and auxiliary logits
    at the input size, concatenated (2 x num_classes channels, float32)."""
    inputs = keras.Input((None, None, channels), name="image")
    stages = resnet_stages(inputs, depth, output_stride=8)
    main = HEADS[head](stages[-1], num_classes, "head")
    aux = fcn_head(stages[-2], num_classes, "aux")
    main = ResizeLike(name=LOGITS, dtype="float32")([main, inputs])
    aux = ResizeLike(name="aux_logits", dtype="float32")([aux, inputs])
    outputs = layers.Concatenate(name="main_and_aux", dtype="float32")([main, aux])
    return keras.Model(inputs, outputs, name=f"{head}_resnet{depth}")


def build_training_network(hp) -> keras.Model:
    """The training network (main and auxiliary logits) of validated hyperparameters."""
    return build_network(hp.algorithm, hp.depth, hp.num_classes)


def build_model(hp) -> keras.Model:
    """The network that segments (main logits only, `num_classes` channels) of validated
    hyperparameters: the registry's `build_model`."""
    return inference_network(build_training_network(hp))


def inference_network(model: keras.Model) -> keras.Model:
    """The main branch of a training network (the auxiliary head is not computed)."""
    return keras.Model(model.inputs, model.get_layer(LOGITS).output, name=model.name)


def encoder_layers(model: keras.Model) -> list[layers.Layer]:
    """The encoder's layers with weights (the ResNet's names; heads are `head_*` / `aux_*`)."""
    return [
        layer
        for layer in model.layers
        if layer.weights and not layer.name.startswith(("head_", "aux_"))
    ]


def use_synchronized_batch_norm(model: keras.Model) -> None:
    """Batch-norm statistics over the replicas of a MirroredStrategy (syncbn)."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.synchronized = True


@keras.saving.register_keras_serializable("vision_pipelines")
class SegmentationLoss(keras.losses.Loss):
    """Cross-entropy of the main logits plus AUX_WEIGHT x that of the auxiliary ones; pixels
    labelled 255 count for nothing."""

    def __init__(self, num_classes: int, ignore_class: int = 255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.ignore_class = num_classes, ignore_class
        self._ce = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=ignore_class
        )

    def call(self, y_true, y_pred):
        n = self.num_classes
        main = self._ce(y_true, y_pred[..., :n])
        return main + AUX_WEIGHT * self._ce(y_true, y_pred[..., n:])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_class": self.ignore_class,
        }
