"""The ResNet depths the reference offers (plain data: shared by the table and the builder)."""

IMAGENET_DEPTHS = (18, 34, 50, 101, 152, 200)
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
