"""Writes foreign_cnn.pte and foreign_cnn.tflite: a small third-party CNN (224 in, 1,000 logits out, no lsnet
metadata) that the runner tests run in place of the MobileNet peers of ../shared. Run from the repo root."""
import torch
from torch import nn
torch.manual_seed(0)
m = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1000)).eval()
x = torch.randn(1, 3, 224, 224)
from executorch.exir import to_edge_transform_and_lower
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
prog = to_edge_transform_and_lower(torch.export.export(m, (x,)), partitioner=[XnnpackPartitioner()]).to_executorch()
open("tests/data/foreign/foreign_cnn.pte", "wb").write(prog.buffer)
import litert_torch
litert_torch.convert(m, (x,)).export("tests/data/foreign/foreign_cnn.tflite")
