"""semantic-segmentation: FCN, PSP and DeepLabV3 heads on a dilated ResNet-50/101 (Keras 3).

Roles (tasks.algorithms): `training:train`, `evaluation:evaluate`, `prediction:predict`,
`serving:load_predictor`, `network:build_model`, `hyperparameters:...from_strings`.
"""
