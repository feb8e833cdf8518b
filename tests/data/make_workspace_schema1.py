"""How tests/data/workspace-schema1 was written: run in an empty folder with robench at commit c41ec42 (records of
schema 1), then `robench matrix -w ws --device cpu --out old_matrix.csv` gave workspace-schema1-matrix.csv."""

import torch
from torch import nn

import robench

ws = "ws"
robench.train("tiny", dataset="digits", workspace=ws, preset="quick", epochs=2, width=4, device="cpu", name="tiny")
robench.train("tiny", dataset="digits", workspace=ws, preset="quick", epochs=1, width=4, keep=0.5, device="cpu",
              name="tiny-keep0.5-bottom")
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 2, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 7 * 7, 10))
torch.jit.script(net).save("net.ts")
robench.import_model("scripted", "torchscript:net.ts", dataset="digits", workspace=ws, mean=[0.5], std=[0.25],
                     device="cpu")
robench.attack("tiny", "fgsm", n=8, workspace=ws, device="cpu")
robench.attack("tiny", "square", n=4, workspace=ws, device="cpu", queries=20)
robench.attack("tiny", "boundary", n=3, workspace=ws, device="cpu", steps=200, init_directions=20)
