"""Projectors from encoder embeddings to LLM soft tokens (LLaVA, Liu et al. 2023).

Every projector maps ``(B, T, in_dim) -> (B, T * tokens_per_input, out_dim)``: an image is one CLIP
vector expanded to K tokens (T=1), an audio clip is M pooled Whisper states, one token each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

KINDS = ("linear", "mlp2x_gelu")


@dataclass(frozen=True)
class ProjectorSpec:
    kind: str  # one of KINDS
    in_dim: int  # encoder embedding size
    out_dim: int  # LLM hidden size
    tokens_per_input: int  # soft tokens made from each input vector

    def to_dict(self) -> dict:
        return asdict(self)


class Projector(nn.Module):
    def __init__(self, spec: ProjectorSpec):
        super().__init__()
        self.spec = spec
        width = spec.out_dim * spec.tokens_per_input
        if spec.kind == "linear":
            self.net = nn.Linear(spec.in_dim, width)
        elif spec.kind == "mlp2x_gelu":
            self.net = nn.Sequential(nn.Linear(spec.in_dim, width), nn.GELU(), nn.Linear(width, width))
        else:
            raise ValueError(f"unknown projector kind {spec.kind!r}; valid: {', '.join(KINDS)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T * tokens_per_input, out_dim)."""
        assert x.dim() == 3 and x.shape[-1] == self.spec.in_dim, f"expected (B, T, {self.spec.in_dim}), got {tuple(x.shape)}"
        b, t, _ = x.shape
        y = self.net(x)  # (B, T, out_dim * r)
        return y.view(b, t * self.spec.tokens_per_input, self.spec.out_dim)


def build_projector(kind: str, in_dim: int, out_dim: int, tokens_per_input: int = 1) -> Projector:
    return Projector(ProjectorSpec(kind, in_dim, out_dim, tokens_per_input))
