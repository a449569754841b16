"""A short ELinFormer run on real data (Los-loop from ../shared/data); skipped when the data is
absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from eala_jax.train import Config, DataConfig, ModelConfig, TrainConfig, train_and_evaluate

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(
    not (DATA_DIR / "los_loop" / "los_speed.csv").is_file(),
    reason=f"Los-loop not found under {DATA_DIR} (the shared data folder beside the repository)",
)
def test_short_los_loop_run_beats_its_first_evaluation_and_historical_average(tmp_path):
    config = Config(
        name="los_loop_smoke",
        data=DataConfig(name="los_loop", data_dir=str(DATA_DIR), num_nodes=207, steps_per_day=288),
        # ELinFormer (EALA on both axes, default estimator), shrunk to model dim 32, without the
        # day-of-week embedding: Los-loop's validation weekdays never occur in its training split.
        model=ModelConfig(
            input_embedding_dim=8,
            tod_embedding_dim=8,
            dow_embedding_dim=0,
            adaptive_embedding_dim=16,
            feed_forward_dim=32,
            num_heads=2,
            num_temporal_layers=1,
            num_spatial_layers=1,
        ),
        train=TrainConfig(
            batch_size=16,
            max_epochs=4,
            max_steps_per_epoch=15,
            patience=0,
            learning_rate=3e-3,
            milestones=(),
            parallel="none",
        ),
        progress_bar=False,
        plots=False,
    )
    results = train_and_evaluate(config, tmp_path / "run")
    history = results["history"]
    first, last = history[0]["val_mae"], history[-1]["val_mae"]
    historical_average = results["val"]["historical_average"]["mae_mean"]
    assert last < first, [row["val_mae"] for row in history]
    assert last < historical_average, (last, historical_average)
