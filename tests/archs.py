"""Small modern architectures in plain torch, for the explainer × architecture tests and
``bench/architectures.py``: random (seeded) weights, 3 × 32 × 32 inputs, 10 classes, a few
thousand parameters each, so that every explainer runs on them in well under a second.

* :class:`TorchViT` — a ViT on ``nn.TransformerEncoder`` (pre-norm layers, GELU, class token).
* :class:`HandViT` — a ViT with hand-written (timm-style) attention: ``qkv`` linear, softmax,
  ``attn_drop``; a class token plus ``registers`` register tokens, or mean pooling.
* :class:`TinySwin` — windowed attention on (N, H, W, C) maps, shifted windows, patch merging.
* :class:`TinyConvNeXt` — depthwise 7 × 7 conv, channels-last LayerNorm, GELU, layer scale.
* :class:`TinyMobileNetV2` — inverted residuals with BatchNorm and ReLU6: the control, a
  network every rule-based method covers.

Factories (``archs:vit``…) are usable as ``model.factory`` in a run configuration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIDE = 32
CLASSES = 10


def _seeded(net: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every parameter from ``seed`` (default init, then a fixed generator),
    so a factory returns the same network in every process."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif name.endswith(("weight", "gamma")):  # norms' and layer scales
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net.eval()


# ---- ViT on nn.TransformerEncoder ---------------------------------------------------------

class TorchViT(nn.Module):
    """Patch embedding (8 × 8 conv) → class token + position embedding → 3 pre-norm
    ``nn.TransformerEncoderLayer`` (2 heads, GELU) → LayerNorm → linear head on the class token.
    ``batch_first=False`` builds the (T, N, C) layout of torch's default."""

    def __init__(self, dim: int = 32, depth: int = 3, heads: int = 2, patch: int = 8, batch_first: bool = True,
                 norm_first: bool = True, classes: int = CLASSES):
        super().__init__()
        self.batch_first = batch_first
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        n = (SIDE // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=batch_first, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)               # (N, 16, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        if not self.batch_first:
            x = x.transpose(0, 1)                                          # (T, N, C)
        x = self.encoder(x)
        cls = x[:, 0] if self.batch_first else x[0]
        return self.head(self.norm(cls))


# ---- ViT with hand-written attention -----------------------------------------------------

class Attention(nn.Module):
    """Multi-head self-attention written out (the timm layout). The softmax probabilities
    (N, heads, T, T) pass through ``attn_drop``: the hook point attention explainers read."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 2 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HandViT(nn.Module):
    """ViT with :class:`Block` s: class token + ``registers`` register tokens before the
    4 × 4 patch tokens (``pool="cls"``), or no prefix and the mean of the tokens (``"mean"``)."""

    def __init__(self, dim: int = 32, depth: int = 3, heads: int = 2, patch: int = 8, registers: int = 0,
                 pool: str = "cls", classes: int = CLASSES):
        super().__init__()
        self.pool = pool
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        n = (SIDE // patch) ** 2
        self.n_prefix = 1 + registers if pool == "cls" else 0
        self.prefix = nn.Parameter(torch.zeros(1, self.n_prefix, dim)) if self.n_prefix else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n + self.n_prefix, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.prefix is not None:
            x = torch.cat([self.prefix.expand(x.shape[0], -1, -1), x], 1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return self.head(x[:, 0] if self.pool == "cls" else x.mean(1))


# ---- Swin-like ---------------------------------------------------------------------------

class WindowAttention(Attention):
    """Self-attention inside non-overlapping ``window`` × ``window`` windows of an (N, H, W, C)
    map, the windows shifted by ``shift`` (cyclic roll, no attention mask: Swin-like, not Swin)."""

    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__(dim, heads)
        self.window, self.shift = window, shift

    def forward(self, x):
        n, h, w, c = x.shape
        s, ws = self.shift, self.window
        if s:
            x = torch.roll(x, (-s, -s), (1, 2))
        win = x.reshape(n, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        out = super().forward(win)                                           # (N·windows, ws², C)
        out = out.reshape(n, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)
        return torch.roll(out, (s, s), (1, 2)) if s else out


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, heads, window, shift)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 2 * dim)

    def forward(self, x):                                                     # (N, H, W, C)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2 × 2 neighbours concatenated → LayerNorm → linear to 2C: (N, H, W, C) → (N, H/2, W/2, 2C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm, self.reduction = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim)

    def forward(self, x):
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class TinySwin(nn.Module):
    """4 × 4 patches (8 × 8 map) → 2 windowed blocks (window 4, shifts 0 and 2) → patch merging
    → 2 blocks on the 4 × 4 map → LayerNorm → mean over positions → linear head."""

    def __init__(self, dim: int = 16, heads: int = 2, window: int = 4, classes: int = CLASSES):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.stages = nn.ModuleList([
            nn.Sequential(SwinBlock(dim, heads, window, 0), SwinBlock(dim, heads, window, window // 2)),
            nn.Sequential(PatchMerging(dim), SwinBlock(2 * dim, heads, window, 0), SwinBlock(2 * dim, heads, window, 0)),
        ])
        self.norm = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).permute(0, 2, 3, 1)                           # (N, 8, 8, C)
        for stage in self.stages:
            x = stage(x)
        return self.head(self.norm(x).mean(dim=(1, 2)))


# ---- ConvNeXt-like -----------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))                   # channels last
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    """Stem (4 × 4 conv + LayerNorm) → 2 blocks at 8 × 8 → downsample (LayerNorm + 2 × 2 conv)
    → 2 blocks at 4 × 4 → global mean → LayerNorm → linear head."""

    def __init__(self, dims: tuple[int, int] = (16, 32), classes: int = CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0]))
        self.stages = nn.Sequential(
            nn.Sequential(ConvNeXtBlock(dims[0]), ConvNeXtBlock(dims[0])),
            nn.Sequential(LayerNorm2d(dims[0]), nn.Conv2d(dims[0], dims[1], 2, 2),
                          ConvNeXtBlock(dims[1]), ConvNeXtBlock(dims[1])),
        )
        self.norm = nn.LayerNorm(dims[1])
        self.head = nn.Linear(dims[1], classes)

    def forward(self, x):
        return self.head(self.norm(self.stages(self.stem(x)).mean(dim=(2, 3))))


# ---- MobileNetV2-style (the control) -----------------------------------------------------

def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(_conv_bn(cin, hidden, 1), _conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  _conv_bn(hidden, cout, 1, act=False))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class TinyMobileNetV2(nn.Module):
    def __init__(self, classes: int = CLASSES):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 3, 2), InvertedResidual(8, 8, 1), InvertedResidual(8, 16, 2),
            InvertedResidual(16, 16, 1), _conv_bn(16, 32, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


# ---- factories ---------------------------------------------------------------------------

def vit(seed: int = 0, **kw) -> nn.Module:
    return _seeded(TorchViT(**kw), seed)


def hand_vit(seed: int = 1, **kw) -> nn.Module:
    return _seeded(HandViT(**kw), seed)


def swin(seed: int = 2, **kw) -> nn.Module:
    return _seeded(TinySwin(**kw), seed)


def convnext(seed: int = 3, **kw) -> nn.Module:
    return _seeded(TinyConvNeXt(**kw), seed)


def mobilenet(seed: int = 4, **kw) -> nn.Module:
    net = _seeded(TinyMobileNetV2(**kw), seed)
    g = torch.Generator().manual_seed(seed + 100)
    for m in net.modules():  # running statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net


#: name → factory: the architectures of the explainer × architecture table (README).
ARCHITECTURES = {"cnn": mobilenet, "vit": vit, "hand_vit": hand_vit, "swin": swin, "convnext": convnext}


def images(n: int = 2, seed: int = 0) -> torch.Tensor:
    """(n, 3, 32, 32) float32 in [0, 1]: smooth random blobs, not white noise, so that maps
    have structure to find."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    return F.interpolate(low, size=(SIDE, SIDE), mode="bilinear", align_corners=False).clamp(0, 1)


def axiom_run(root, name: str = "axioms"):
    """A complete run whose explainers break their axioms, for the diagnostics tests: the
    ConvNeXt-like net (3 classes) on the toy squares, DeepLIFT allowed although its rules do not
    cover LayerNorm, Integrated Gradients at 2 steps, the plain gradient and Grad-CAM (no axiom)."""
    from toy import make_dataset, toy_config
    from xai_core.config import config_from_dict
    from xai_core.runner import run

    data = make_dataset(root / "data", n=6)
    model = {"factory": "archs:convnext", "factory_kwargs": {"classes": 3}, "activation": "sigmoid",
             "input_size": [SIDE, SIDE], "mean": 0, "std": 1}
    explainers = [{"type": "deeplift", "params": {"allow_unsupported": True}},
                  {"type": "integrated_gradients", "params": {"steps": 2}}, "gradient", "gradcam"]
    cfg = config_from_dict(toy_config(data, root / "logs" / name, model=model, explainers=explainers,
                                      metrics=[{"type": "deletion_auc", "params": {"steps": 4}}, "sparseness"],
                                      batch_size=3))
    run(cfg, cfg.out, progress=False)
    return root / "logs", cfg.out
