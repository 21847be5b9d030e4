"""SKA as a Triton kernel for CUDA tensors (forward only), for fast PyTorch inference on NVIDIA GPUs.

It is never used for export (no converter accepts a Triton kernel) and never chosen implicitly: ask
for it with the ``triton`` SKA form. ``triton`` is imported only when the kernel is first launched.
"""

from __future__ import annotations

import functools
import importlib.util

import torch


def triton_available() -> bool:
    """True when the triton package is importable and a CUDA device is present."""
    return importlib.util.find_spec("triton") is not None and torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def ska_forward_kernel(x_ptr, w_ptr, out_ptr, C, G, H, W, BLOCK: tl.constexpr):
        plane = tl.program_id(0).to(tl.int64)  # b * C + c
        b = plane // C
        g = (plane % C) % G
        hw = H * W
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < hw
        row = offs // W
        col = offs % W
        x_plane = x_ptr + plane * hw
        w_plane = w_ptr + (b * G + g) * 9 * hw
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k in tl.static_range(9):
            r = row + (k // 3 - 1)
            s = col + (k % 3 - 1)
            valid = inside & (r >= 0) & (r < H) & (s >= 0) & (s < W)
            xv = tl.load(x_plane + r * W + s, mask=valid, other=0.0).to(tl.float32)
            wv = tl.load(w_plane + k * hw + offs, mask=inside, other=0.0).to(tl.float32)
            acc += xv * wv
        tl.store(out_ptr + plane * hw + offs, acc.to(out_ptr.dtype.element_ty), mask=inside)

    return ska_forward_kernel


def ska_triton(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """SKA on CUDA with a Triton kernel; accumulates in float32 whatever the input dtype.

    Raises:
        RuntimeError: when the tensors are not on a CUDA device or triton is missing.
    """
    if not (x.is_cuda and w.is_cuda):
        raise RuntimeError("the triton SKA form needs CUDA tensors; use another form on this device")
    if not triton_available():
        raise RuntimeError("the triton SKA form needs the triton package (pip install triton)")
    b, c, h, wd = x.shape
    groups = w.shape[1]
    x = x.contiguous()
    w = w.contiguous()
    out = torch.empty_like(x)
    block = 256
    grid = (b * c, (h * wd + block - 1) // block)
    _kernel()[grid](x, w, out, c, groups, h, wd, BLOCK=block)
    return out
