"""Regenerate ``small_conv.pte`` and ``small_conv.onnx``: a 3x32x32 -> 10 convolution net, lowered to
ExecuTorch's XNNPACK delegate and exported to ONNX, which the adb tests time (kept small so they are
committed, not exported on every run).

    python tests/data/phones/make_small_models.py
"""

from pathlib import Path

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import to_edge_transform_and_lower


class SmallConv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = SmallConv().eval()
    program = torch.export.export(model, (torch.randn(1, 3, 32, 32),))
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    target = Path(__file__).with_name("small_conv.pte")
    target.write_bytes(lowered.buffer)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    onnx_path = target.with_suffix(".onnx")
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(onnx_path), input_names=["images"],
                      output_names=["logits"], dynamo=False)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes)")
