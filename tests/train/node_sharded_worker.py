"""One process of the multi-process node-sharding test
(tests/train/test_loop_node_sharded_multiprocess.py), started as `python -m
tests.train.node_sharded_worker OUT COORDINATOR NUM_PROCESSES PROCESS_ID DATA,NODES`.

4 CPU devices in all, split evenly over the processes (gloo collectives over loopback), under
`train.mesh_shape=(DATA, NODES)`. One process (the reference): the uninterrupted run through the
command line, in `OUT/reference_<mesh>`. Several: the same stopped after epoch 1
(`--set train.max_epochs=1`), then resumed to the end, in `OUT/processes_<mesh>`, then a mesh
shape it must refuse (one that counts one process's devices only). Each process writes
`OUT/<run>_<mesh>_<id>.json` (the results its last run returned and the errors).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from eala_jax.train import DataConfig
from tests.train.multiprocess_worker import _plain
from tests.train.train_helpers import tiny_config

DEVICES = 4
DATA = DataConfig(name="synthetic", options=(("num_days", 3), ("num_nodes", 8)))


def config(mesh_shape: tuple[int, int]):
    """2 epochs of 4 steps of batch 8, a checkpoint every 3 steps, 8 sensors over the mesh."""
    base = tiny_config(parallel="jit", checkpoint_every_steps=3, mesh_shape=mesh_shape)
    return dataclasses.replace(base, data=DATA)


def main(out: Path, coordinator: str, num_processes: int, process_id: int, mesh: str) -> None:
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", DEVICES // num_processes)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")

    from eala_jax.train import apply_overrides, train_and_evaluate
    from experiments import train as train_cli
    from tests.train.train_helpers import write_config_file

    shape = tuple(int(n) for n in mesh.split(","))
    tag = "x".join(map(str, shape))
    run = f"{'reference' if num_processes == 1 else 'processes'}_{tag}"
    workdir = out / run
    cfg = config(shape)
    config_file = write_config_file(out / f"config_{run}_{process_id}.py", cfg)
    command = ["--config", str(config_file), "--workdir", str(workdir)]
    command += ["--coordinator", coordinator, "--num-processes", str(num_processes)]
    command += ["--process-id", str(process_id)]
    if num_processes > 1:  # stopped at the end of epoch 1, as if with a smaller budget
        command += ["--set", "train.max_epochs=1"]
    code = train_cli.main(command)
    if code != 0:
        raise SystemExit(f"the command line run failed with status {code}")
    assert jax.process_count() == num_processes and jax.device_count() == DEVICES
    results = None
    errors = {}
    if num_processes > 1:
        results = train_and_evaluate(cfg, workdir)  # resumed at the epoch end, to the end
        # A shape over one process's devices only: refused (it would train diverging copies).
        override = f"train.mesh_shape=[1, {DEVICES // num_processes}]"
        try:
            train_and_evaluate(apply_overrides(cfg, [override]), out / f"refused_{tag}")
        except ValueError as err:
            errors[override] = str(err)
    report = {"results": results, "errors": errors}
    (out / f"{run}_{process_id}.json").write_text(json.dumps(_plain(report)))


if __name__ == "__main__":
    folder, address, count, index, mesh_arg = sys.argv[1:]
    main(Path(folder), address, int(count), int(index), mesh_arg)
