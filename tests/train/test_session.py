"""eala_jax.train.session: `Session.train_steps` is the loop's training, from any state."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from eala_jax.train import Checkpoints, train_and_evaluate
from eala_jax.train.session import Session
from tests.train.train_helpers import tiny_config

# One epoch of 3 steps: the resumable checkpoint at step 3 is the state after 3 loop steps.
CONFIG = tiny_config(max_epochs=1, max_steps_per_epoch=3, check_memory=False)


def test_train_steps_from_the_fresh_state_equals_the_loops_first_steps(tmp_path):
    train_and_evaluate(CONFIG, tmp_path)
    session = Session.build(CONFIG)
    checkpoints = Checkpoints(tmp_path)
    loop_state, _ = checkpoints.restore(session.initial_state, step=3)
    checkpoints.close()
    state, measurements = session.train_steps(
        session.dp.put_state(session.initial_state), session.train_batches(), 3
    )
    assert [m["lr"] for m in measurements] == pytest.approx([1e-3] * 3)
    for ours, theirs in zip(
        jax.tree.leaves(session.dp.host_state(state)), jax.tree.leaves(loop_state), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="num_steps must be a non-negative integer, got -1"):
        session.train_steps(state, session.train_batches(), -1)
