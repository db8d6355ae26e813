"""Building ClassifierHandles around hand-made networks (imported by the explainer tests)."""

from xai_core.models.handle import ClassifierHandle, PixelSpaceModel


def make_handle(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), activation="sigmoid", size=64, classes=10):
    """(N, 3, size, size) pixels → ``classes`` logits; identity normalisation by default."""
    return ClassifierHandle(PixelSpaceModel(net.eval(), mean, std), activation, (size, size), classes)
