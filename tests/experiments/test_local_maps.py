"""experiments.local_maps' comparison on random queries and keys: a table holding every key gives
the softmax rows and the exact entropy; an empty one gives EALA's rows and its estimate."""

import numpy as np

from experiments.local_maps import analyse
from tests.ops.helpers import qkv


def test_analyse_limits():
    q, k, _ = qkv(240, t=9, s=9, q_scale=2.0)
    every = np.tile(np.arange(9, dtype=np.int32), (9, 1))
    none = np.full((9, 2), -1, np.int32)
    result = analyse(q, k, {"every": every, "none": none})
    assert result["eala_local (every)"]["l1"] < 1e-5
    assert result["eala_local (every)"]["entropy_error"] < 1e-5
    assert result["eala"]["l1"] > 0.05  # the rows do differ from the softmax's
    for key in ("l1", "entropy_error"):
        np.testing.assert_allclose(result["eala_local (none)"][key], result["eala"][key], atol=1e-5)
