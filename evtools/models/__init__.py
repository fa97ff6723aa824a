"""Networks: DeepLabV3+ over ResNet, the bidirectional modality reconstruction generators and discriminators."""
