"""LoopState: the early-stopping record and the stop decision, and its checkpoint round trip."""

import pytest

from eala_jax.train import LoopState


def run_epochs(val_maes, *, patience, max_epochs):
    loop = LoopState()
    for val_mae in val_maes:
        loop.step += 4
        loop.step_in_epoch = 4
        loop.end_epoch(val_mae)
        loop.decide_stop(patience=patience, max_epochs=max_epochs)
        if loop.finished:
            break
    return loop


def test_patience_counts_epochs_without_a_strictly_better_mae():
    # Best at epoch 2; epoch 3 worse, epoch 4 equal to the best (no improvement): stop after 4.
    loop = run_epochs([5.0, 4.0, 4.5, 4.0, 3.0], patience=2, max_epochs=10)
    assert (loop.epoch, loop.best_epoch, loop.best_val_mae) == (4, 2, 4.0)
    assert (loop.finished, loop.stop_reason, loop.bad_epochs) == (True, "early_stopping", 2)
    assert loop.step_in_epoch == 0 and loop.epoch_loss_count == 0


def test_an_improvement_resets_the_count_and_max_epochs_stops():
    loop = run_epochs([5.0, 5.5, 4.0, 4.2, 3.9], patience=2, max_epochs=5)
    assert (loop.epoch, loop.best_epoch, loop.stop_reason) == (5, 5, "max_epochs")
    assert run_epochs([1.0] + [2.0] * 8, patience=0, max_epochs=9).stop_reason == "max_epochs"


def test_no_decision_mid_epoch():
    loop = run_epochs([5.0, 6.0, 7.0], patience=2, max_epochs=10)
    assert loop.finished
    loop.step_in_epoch = 1  # resumed mid-epoch: that epoch's end decides
    loop.decide_stop(patience=2, max_epochs=1)
    assert not loop.finished and loop.stop_reason is None


def test_checkpoint_round_trip():
    loop = run_epochs([5.0, 4.0], patience=2, max_epochs=10)
    loop.history.append({"epoch": 2})
    loop.data_state = b'{"position": 8}'
    again = LoopState.from_checkpoint(loop.counters(), loop.data_state)
    assert again == loop and "data_state" not in loop.counters()
    with pytest.raises(ValueError, match=r"unknown keys \['patience_left'\]"):
        LoopState.from_checkpoint({**loop.counters(), "patience_left": 1}, b"{}")
