"""Faster one-row products on the CPU: linear weights kept input-major.

A cached generation step multiplies one row -- the newest token's state -- by every
weight of the model. Torch's CPU BLAS reads W faster for such a product when W's memory
runs input by input, (in, out), than in nn.Linear's own order (out, in);
`use_input_major_weights` re-lays every weight that way. The values are the same: same
parameters, same state_dict, the same outputs within float rounding. sample.py applies it
on the CPU; `bench/sampling.py --layouts` measures it against the plain model
(BENCHMARKS.md). It does not teach the transformer, so `minillm/model.py` and
`minillm.checkpoint.load_for_inference` know nothing of it.

Leaves out: training with such a model (train and export from `load_for_inference`'s
plain model: a re-laid weight is a view, so `.view(-1)`-style flattening of it fails),
other devices, and any change to the model's code.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def use_input_major_weights(model: nn.Module) -> nn.Module:
    """Keep each linear layer's weight in memory input by input: same values, new order.

    `nn.Linear` stores W as (out, in), row after row, and computes x Wᵀ. Here W stays an
    (out, in) tensor -- a transposed view of (in, out) storage -- so the model code does
    not change. The tied embedding shares the LM head's weight, so its rows become
    strided: looking ids up is slower, still small next to the blocks' work.
    Returns the model, changed in place.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            w = module.weight
            w.data = w.data.t().contiguous().t()  # still (out, in), now strides (1, out)
    return model
