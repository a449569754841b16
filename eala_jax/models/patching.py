"""Patch tokens of the temporal layers (docs/architecture.md, "Long look-backs"): how many patches
of `patch_len` steps every `patch_stride` an input window of `in_steps` gives, and where each ends.
"""

from __future__ import annotations

import numpy as np

__all__ = ["num_tokens", "patch_ends"]


def num_tokens(in_steps: int, *, patch_len: int = 1, patch_stride: int = 1) -> int:
    """Tokens the temporal layers see: `(in_steps - patch_len) // patch_stride + 1` patches (the
    first `(in_steps - patch_len) % patch_stride` steps fall before the first patch and are not
    read). ValueError naming `model.patch_len` / `model.patch_stride` if they do not fit."""
    for label, value in (("model.patch_len", patch_len), ("model.patch_stride", patch_stride)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if patch_len > in_steps:
        raise ValueError(
            f"model.patch_len={patch_len} is longer than the input window in_steps={in_steps}"
        )
    return (in_steps - patch_len) // patch_stride + 1


def patch_ends(in_steps: int, *, patch_len: int, patch_stride: int) -> np.ndarray:
    """int32 `[L]`: the last input step of each patch, ascending; the last is `in_steps - 1`."""
    count = num_tokens(in_steps, patch_len=patch_len, patch_stride=patch_stride)
    return (in_steps - 1 - patch_stride * np.arange(count - 1, -1, -1)).astype(np.int32)
