"""Writes the random embeddings and manifest that `probe.yaml` trains on."""

import csv
import os

import torch

generator = torch.Generator().manual_seed(0)
os.makedirs("emb", exist_ok=True)
rows = []
for split, count in [("train", 24), ("val", 12), ("test", 12)]:
    for index in range(count):
        target = index % 3
        path = f"emb/{split}_{index}.pt"
        torch.save(torch.randn(8, generator=generator) + target, path)
        rows.append((f"{split}_{index}", path, target, split))
with open("manifest.csv", "w", newline="") as stream:
    writer = csv.writer(stream)
    writer.writerow(["origin", "embeddings", "target", "split"])
    writer.writerows(rows)
