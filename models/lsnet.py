"""The LSNet network: blocks, the model class, and the named variants.

The module tree mirrors the reference implementation (THU-MIG/lsnet, ``model/lsnet.py``) name for name,
so its checkpoints load unchanged. Two additions that do not touch the checkpoint format:

* ``fused=True`` builds the re-parameterized form directly (what ``reparameterize`` returns), so a fused
  state dict saved to disk loads back into a freshly built model;
* ``img_size`` may be rectangular ``(H, W)``; the attention bias table then covers an (rh, rw) grid.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..recipe import DEFAULT_RECIPE, Recipe
from ..reparam import fuse_tree
from .layers import FFN, BN_Linear, Conv2d_BN, Residual, RepVGGDW, SqueezeExcite, conv_bn
from .ska import SKA, check_ska_form



def to_2tuple(size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` -> ``(224, 224)``; ``(192, 256)`` stays as is."""
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def stage_grids(img_size: int | Sequence[int], patch_size: int = 8) -> list[tuple[int, int]]:
    """Token grid (rows, cols) of each of the four stages for an input size, as the reference computes it."""
    h, w = to_2tuple(img_size)
    grid = (h // patch_size, w // patch_size)
    grids = [grid]
    for _ in range(3):
        grid = ((grid[0] - 1) // 2 + 1, (grid[1] - 1) // 2 + 1)
        grids.append(grid)
    return grids


def attention_bias_index(rows: int, cols: int) -> torch.Tensor:
    """(N, N) index into a (rows * cols) bias table: ``|dy| * cols + |dx|`` over row-major points.

    For square grids this is exactly the reference's first-seen offset numbering.
    """
    points = list(itertools.product(range(rows), range(cols)))
    idx = [abs(p[0] - q[0]) * cols + abs(p[1] - q[1]) for p in points for q in points]
    return torch.tensor(idx, dtype=torch.long).view(len(points), len(points))


def attention_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, heads: int, *,
                   scale: float | None = None, batched_matmul: bool = False,
                   float32_softmax: bool = True) -> torch.Tensor:
    """softmax(q^T k * scale + bias) applied to v, per head: the part of LSNet's attention every form shares.

    Args:
        q, k: (B, heads * key_dim, H, W) queries (after their depthwise convolution) and keys.
        v: (B, heads * d, H, W) values.
        bias: (heads, N, N) additive bias, N = H * W (a leading 1 is allowed).
        heads: number of heads.
        scale: multiplies q^T k; None when it is already folded into q (fused models).
        batched_matmul: compute with rank-3 ``bmm`` (what XNNPACK delegates) instead of rank-4 matmuls.
        float32_softmax: softmax in float32 whatever the dtype (a no-op for float32 models); float16
            XNNPACK programs turn it off, since a cast would leave the delegate.

    Returns:
        (B, heads * d, H, W).
    """
    b, _, h, w = q.shape
    n = h * w
    key_dim, d = q.shape[1] // heads, v.shape[1] // heads
    if batched_matmul:
        attn = torch.bmm(q.view(b * heads, key_dim, n).transpose(1, 2), k.view(b * heads, key_dim, n))
        attn = attn.view(b, heads, n, n)
    else:
        attn = q.reshape(b, heads, key_dim, n).transpose(-2, -1) @ k.reshape(b, heads, key_dim, n)
    if scale is not None:
        attn = attn * scale
    attn = attn + bias
    attn = attn.float().softmax(dim=-1).to(v.dtype) if float32_softmax else attn.softmax(dim=-1)
    if batched_matmul:
        out = torch.bmm(v.view(b * heads, d, n), attn.view(b * heads, n, n).transpose(1, 2))
    else:
        out = v.reshape(b, heads, d, n) @ attn.transpose(-2, -1)
    return out.reshape(b, heads * d, h, w)


class Attention(nn.Module):
    """Multi-head self-attention with a relative-position bias, used in LSNet's last stage."""

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: int | Sequence[int] = 14, fused: bool = False):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.nh_kd = nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.attn_ratio = attn_ratio
        self.resolution = to_2tuple(resolution)
        self.fused = fused
        self.qkv = conv_bn(dim, self.dh + nh_kd * 2, fused=fused)
        self.proj = nn.Sequential(nn.ReLU(), conv_bn(self.dh, dim, bn_weight_init=0, fused=fused))
        self.dw = conv_bn(nh_kd, nh_kd, 3, 1, 1, groups=nh_kd, fused=fused)
        rows, cols = self.resolution
        n = rows * cols
        if fused:
            # gathered once; the key scale is folded into ``dw`` (see fuse())
            self.register_buffer("attention_bias", torch.zeros(num_heads, n, n))
        else:
            self.attention_biases = nn.Parameter(torch.zeros(num_heads, n))
        # kept when fused too: it records the grid, so a fused checkpoint can still be resized
        self.register_buffer("attention_bias_idxs", attention_bias_index(rows, cols))

    def bias(self) -> torch.Tensor:
        """The (heads, N, N) additive attention bias."""
        if self.fused:
            return self.attention_bias
        return self.attention_biases[:, self.attention_bias_idxs]

    def bias_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The bias for an input's (rows, cols) token grid: this layer's own (subclasses follow the grid)."""
        return self.bias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        return self.proj(attention_core(self.dw(q), k, v, self.bias_for(tuple(x.shape[-2:])), self.num_heads,
                                        scale=None if self.fused else self.scale))

    @torch.no_grad()
    def fuse(self) -> "Attention":
        """Fused copy: convolutions fused, bias gathered into a buffer, key scale folded into ``dw``."""
        if self.fused:
            return self
        fused = Attention(self.dim, self.key_dim, self.num_heads, self.attn_ratio, self.resolution,
                          fused=True).to(self.attention_biases.device, self.attention_biases.dtype)
        fused.qkv = self.qkv.fuse()
        dw = self.dw.fuse()
        dw.weight.mul_(self.scale)
        dw.bias.mul_(self.scale)
        fused.dw = dw
        fused.proj[1] = self.proj[1].fuse()
        fused.attention_bias.copy_(self.bias())
        fused.attention_bias_idxs.copy_(self.attention_bias_idxs)
        return fused


class LKP(nn.Module):
    """Large-kernel perception: generates the per-pixel 3x3 kernels that SKA applies."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8, fused: bool = False):
        super().__init__()
        self.cv1 = conv_bn(dim, dim // 2, fused=fused)
        self.act = nn.ReLU()
        self.cv2 = conv_bn(dim // 2, dim // 2, ks=lks, pad=(lks - 1) // 2, groups=dim // 2, fused=fused)
        self.cv3 = conv_bn(dim // 2, dim // 2, fused=fused)
        self.cv4 = nn.Conv2d(dim // 2, sks ** 2 * dim // groups, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=sks ** 2 * dim // groups)
        self.sks = sks
        self.groups = groups
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(x))
        b, _, h, width = w.shape
        return w.view(b, self.dim // self.groups, self.sks ** 2, h, width)


class LSConv(nn.Module):
    """The LS block: see large (LKP), focus small (SKA), then BatchNorm and a residual."""

    def __init__(self, dim: int, fused: bool = False, resolution: int | Sequence[int] | None = None):
        super().__init__()
        if dim % 8:
            raise ValueError(f"LSConv needs a channel count divisible by 8, got {dim}")
        self.lkp = LKP(dim, lks=7, sks=3, groups=8, fused=fused)
        self.ska = SKA(dim, resolution=to_2tuple(resolution) if resolution is not None else None)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.ska(x, self.lkp(x))) + x


class Block(nn.Module):
    """One LSNet block: mixer (RepVGGDW + SE, LSConv, or attention), then a residual FFN."""

    def __init__(self, ed: int, kd: int, nh: int = 8, ar: float = 4,
                 resolution: int | Sequence[int] = 14, stage: int = -1, depth: int = -1,
                 fused: bool = False):
        super().__init__()
        if depth % 2 == 0:
            self.mixer = nn.Conv2d(ed, ed, 3, 1, 1, groups=ed) if fused else RepVGGDW(ed)
            self.se = SqueezeExcite(ed, 0.25)
        else:
            self.se = nn.Identity()
            if stage == 3:
                self.mixer = Residual(Attention(ed, kd, nh, ar, resolution=resolution, fused=fused))
            else:
                self.mixer = LSConv(ed, fused=fused, resolution=resolution)
        self.ffn = Residual(FFN(ed, int(ed * 2), fused=fused))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.se(self.mixer(x)))


class LSNet(nn.Module):
    """LSNet ("See Large, Focus Small", CVPR 2025) with the reference module tree.

    Args:
        img_size: input size, an int or (H, W); sets the attention bias grid of the last stage.
        patch_size: stride of the patch embedding (the reference always uses 8).
        in_chans: input channels.
        num_classes: classifier outputs; 0 gives a feature extractor (head is Identity).
        embed_dim, key_dim, depth, num_heads: per-stage widths, key dims, block counts and heads.
        distillation: add the ``head_dist`` classifier (eval output is the mean of both heads).
        feature_dim: width of the projected embedding of the community "artist" models: with a value
            other than ``embed_dim[-1]``, ``projection`` (BN_Linear then ReLU) follows the pooling and the
            head reads ``feature_dim`` features. None: no projection (the reference classifier).
        fused: build the re-parameterized form directly (what ``reparameterize`` produces).
        ska: SKA formulation for every LS block (see ``SKA_FORMS``).
    """

    def __init__(self, img_size: int | Sequence[int] = 224, patch_size: int = 8, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: Sequence[int] = (64, 128, 192, 256),
                 key_dim: Sequence[int] = (16, 16, 16, 16), depth: Sequence[int] = (1, 2, 3, 4),
                 num_heads: Sequence[int] = (4, 4, 4, 4), distillation: bool = False,
                 feature_dim: int | None = None, fused: bool = False, ska: str = "auto"):
        super().__init__()
        if not (len(embed_dim) == len(key_dim) == len(depth) == len(num_heads) == 4):
            raise ValueError("embed_dim, key_dim, depth and num_heads need four entries each (one per stage)")
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.embed_dim = list(embed_dim)
        self.key_dim = list(key_dim)
        self.depth = list(depth)
        self.num_heads = list(num_heads)
        self.distillation = distillation and not fused
        self.distilled = distillation
        self.fused = fused
        self.num_features = embed_dim[-1]
        # a projection equal to the pooled width is an Identity in the reference: no keys, no projection
        self.feature_dim = feature_dim if feature_dim not in (None, embed_dim[-1]) else None
        self.embedding_dim = self.feature_dim or self.num_features
        #: the preprocessing the model expects (the user's: ``load_model`` reads what the checkpoint records,
        #: ``lsnet_deploy.recipe.apply_recipe`` sets what the user gives); ``pretrained_cfg`` reads it
        self.recipe: Recipe = DEFAULT_RECIPE

        e0 = embed_dim[0]
        self.patch_embed = nn.Sequential(
            conv_bn(in_chans, e0 // 4, 3, 2, 1, fused=fused), nn.ReLU(),
            conv_bn(e0 // 4, e0 // 2, 3, 2, 1, fused=fused), nn.ReLU(),
            conv_bn(e0 // 2, e0, 3, 2, 1, fused=fused))

        grids = stage_grids(self.img_size, patch_size)
        attn_ratio = [embed_dim[i] / (key_dim[i] * num_heads[i]) for i in range(4)]
        self.blocks1 = nn.Sequential()
        self.blocks2 = nn.Sequential()
        self.blocks3 = nn.Sequential()
        self.blocks4 = nn.Sequential()
        stages = [self.blocks1, self.blocks2, self.blocks3, self.blocks4]
        for i in range(4):
            if i > 0:
                prev = embed_dim[i - 1]
                stages[i].append(conv_bn(prev, prev, 3, 2, 1, groups=prev, fused=fused))
                stages[i].append(conv_bn(prev, embed_dim[i], 1, 1, 0, fused=fused))
            for d in range(depth[i]):
                stages[i].append(Block(embed_dim[i], key_dim[i], num_heads[i], attn_ratio[i], grids[i],
                                       stage=i, depth=d, fused=fused))

        self.projection = self._make_projection(fused)
        self.head = self._make_head(num_classes, fused)
        if self.distillation:
            self.head_dist = self._make_head(num_classes, fused)
        self.set_ska(ska)

    def _make_projection(self, fused: bool) -> nn.Module:
        if self.feature_dim is None:
            return nn.Identity()
        linear = nn.Linear(self.num_features, self.feature_dim) if fused else BN_Linear(self.num_features,
                                                                                         self.feature_dim)
        return nn.Sequential(linear, nn.ReLU())

    def _make_head(self, num_classes: int, fused: bool) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        width = self.embedding_dim
        return nn.Linear(width, num_classes) if fused else BN_Linear(width, num_classes)

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (``ska`` excluded)."""
        return {"img_size": self.img_size, "patch_size": self.patch_size, "in_chans": self.in_chans,
                "num_classes": self.num_classes, "embed_dim": list(self.embed_dim),
                "key_dim": list(self.key_dim), "depth": list(self.depth),
                "num_heads": list(self.num_heads), "distillation": self.distilled,
                "feature_dim": self.feature_dim, "fused": self.fused}

    @property
    def pretrained_cfg(self) -> dict:
        """timm-style preprocessing config: input size, and the model's ``recipe`` (mean, std, interpolation,
        crop_pct, crop_mode)."""
        recipe = self.recipe
        return {"input_size": (self.in_chans, *self.img_size), "mean": tuple(recipe.mean), "std": tuple(recipe.std),
                "interpolation": recipe.interpolation, "crop_pct": recipe.crop_pct, "crop_mode": recipe.crop_mode,
                "num_classes": self.num_classes}

    @property
    def ska_form(self) -> str:
        """The SKA form of the LS blocks (``auto`` when the model has none)."""
        forms = {m.form for m in self.modules() if isinstance(m, SKA)}
        return forms.pop() if len(forms) == 1 else "auto"

    def set_ska(self, form: str) -> "LSNet":
        """Select the SKA formulation of every LS block; returns the model for chaining."""
        check_ska_form(form)
        for module in self.modules():
            if isinstance(module, SKA):
                module.set_form(form)
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output before pooling: (B, E3, H/64, W/64) roughly."""
        x = self.patch_embed(x)
        x = self.blocks1(x)
        x = self.blocks2(x)
        x = self.blocks3(x)
        return self.blocks4(x)

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool, then the projection (if any): the embedding the classifier reads."""
        return self.projection(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def forward_head(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        """Pooling, projection and classifier (the mean of both heads for distilled models in eval).

        With ``return_features`` the embedding before the classifier is returned instead (the artist
        models' ``forward(x, return_features=True)``).
        """
        x = self.forward_embedding(x)
        if return_features:
            return x
        return self.forward_logits(x)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier on an embedding (``forward_embedding``'s output)."""
        if self.distillation:
            out, out_dist = self.head(x), self.head_dist(x)
            if self.training and not torch.jit.is_scripting():
                return out, out_dist
            return (out + out_dist) / 2
        return self.head(x)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), return_features)

    @torch.no_grad()
    def fuse(self) -> "LSNet":
        """Fuse this model in place (children first, then the two heads into one); returns it.

        Prefer ``lsnet_deploy.reparameterize(model)``, which fuses a copy.
        """
        if self.fused:
            return self
        for name, child in self.named_children():
            setattr(self, name, fuse_tree(child))
        if self.distillation:
            head, head_dist = self.head, self.head_dist
            if isinstance(head, nn.Linear):
                merged = nn.Linear(head.in_features, head.out_features).to(head.weight)
                merged.weight.copy_((head.weight + head_dist.weight) / 2)
                merged.bias.copy_((head.bias + head_dist.bias) / 2)
                self.head = merged
            del self.head_dist
            self.distillation = False
        self.fused = True
        return self


VARIANTS: dict[str, dict] = {
    "lsnet_t": {"embed_dim": [64, 128, 256, 384], "depth": [0, 2, 8, 10], "num_heads": [3, 3, 3, 4]},
    "lsnet_s": {"embed_dim": [96, 192, 320, 448], "depth": [1, 2, 8, 10], "num_heads": [3, 3, 3, 4]},
    "lsnet_b": {"embed_dim": [128, 256, 384, 512], "depth": [4, 6, 8, 10], "num_heads": [3, 3, 3, 4]},
}
"""The published architectures (patch 8, key_dim 16, 224x224)."""

ARTIST_VARIANTS: dict[str, dict] = {
    "lsnet_t_artist": VARIANTS["lsnet_t"],
    "lsnet_s_artist": VARIANTS["lsnet_s"],
    "lsnet_b_artist": VARIANTS["lsnet_b"],
    "lsnet_l_artist": {"embed_dim": [160, 320, 480, 640], "depth": [6, 8, 12, 14], "num_heads": [4, 4, 4, 4]},
    "lsnet_xl_artist": {"embed_dim": [192, 384, 576, 768], "depth": [8, 12, 16, 20], "num_heads": [6, 6, 6, 6]},
    "lsnet_xl_artist_448": {"embed_dim": [192, 384, 576, 768], "depth": [8, 12, 16, 20],
                            "num_heads": [6, 6, 6, 6], "img_size": 448},
}
"""The community "artist" variants of spawner1145/lsnet-test (Kaloscope); ``feature_dim`` adds their projection."""

VARIANT_DEFAULTS = {"img_size": 224, "patch_size": 8, "key_dim": [16, 16, 16, 16], "num_classes": 1000}


def variant_config(name: str) -> dict:
    """Constructor arguments of a named variant, ``_distill`` suffix included."""
    base = name[: -len("_distill")] if name.endswith("_distill") else name
    if base in ARTIST_VARIANTS:
        return {**VARIANT_DEFAULTS, **ARTIST_VARIANTS[base], "distillation": name.endswith("_distill")}
    if base not in VARIANTS:
        raise KeyError(name)
    return {**VARIANT_DEFAULTS, **VARIANTS[base], "distillation": name.endswith("_distill")}


def variant_names() -> list[str]:
    """All named variants: each published architecture and its ``_distill`` version, then the artist ones."""
    return [*(n for base in VARIANTS for n in (base, f"{base}_distill")), *ARTIST_VARIANTS]


__all__ = ["LSNet", "Attention", "LKP", "LSConv", "Block", "Conv2d_BN", "BN_Linear", "RepVGGDW",
           "SqueezeExcite", "VARIANTS", "ARTIST_VARIANTS", "variant_config", "variant_names", "stage_grids",
           "attention_bias_index", "to_2tuple", "IMAGENET_MEAN", "IMAGENET_STD"]
