"""ResNet backbones shared by the algorithms: stages with an output stride, ImageNet weights,
weights copied or restored by layer name, and the converter of published weights."""
