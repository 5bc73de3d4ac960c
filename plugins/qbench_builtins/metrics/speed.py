"""Encode and decode throughput measured during evaluation.

The evaluation loop times ``tokenizer.encode`` and ``tokenizer.decode``
separately with a wall clock (synchronising CUDA first), in float32 with no
autocast, at the evaluation batch size.  Under DDP the seconds add up over
ranks, so the numbers are images per second *per process*.  Timings depend
on the machine and on other load: compare only numbers from one machine.
"""

from __future__ import annotations

import torch

from qbench import ConfigError
from qbench.metric import EvalBatch, EvalContext, Metric


class Throughput(Metric):
    """Round-trip images/s (value); encode and decode images/s in the extras."""

    def __init__(self) -> None:
        self.images = torch.zeros((), dtype=torch.int64)
        self.encode_seconds = torch.zeros((), dtype=torch.float64)
        self.decode_seconds = torch.zeros((), dtype=torch.float64)
        self.device = "cpu"
        self.batch_size = 0

    def begin(self, context: EvalContext) -> None:
        self.device = context.device

    def update(self, batch: EvalBatch) -> None:
        self.images = self.images + batch.batch_size
        self.encode_seconds = self.encode_seconds + batch.encode_seconds
        self.decode_seconds = self.decode_seconds + batch.decode_seconds
        self.batch_size = max(self.batch_size, batch.batch_size)

    def state(self) -> dict[str, torch.Tensor]:
        return {"images": self.images, "encode_seconds": self.encode_seconds, "decode_seconds": self.decode_seconds}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.images = state["images"]
        self.encode_seconds, self.decode_seconds = state["encode_seconds"], state["decode_seconds"]

    def compute(self) -> dict:
        images, enc, dec = int(self.images), float(self.encode_seconds), float(self.decode_seconds)
        if images == 0 or enc + dec <= 0:
            raise ConfigError("throughput: no timed images")
        return {
            "value": images / (enc + dec),
            "encode_images_per_s": images / enc if enc > 0 else float("nan"),
            "decode_images_per_s": images / dec if dec > 0 else float("nan"),
        }

    def protocol(self) -> dict:
        return {
            "definition": "wall clock around encode and decode, float32, no autocast, per process",
            "device": self.device,
        }
