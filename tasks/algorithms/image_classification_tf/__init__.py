"""image-classification-tf: fine-tuning a pre-trained TF Hub model on class folders.

`tensorflow_hub.KerasLayer` is a Keras 2 layer, so this package builds its networks with
`tf_keras` (imported by name; TensorFlow's own `tf.keras` and the `keras` 3 of the ResNet
algorithm are left alone, so both algorithms work in one process). Only `hyperparameters` is
imported without TensorFlow.
"""
