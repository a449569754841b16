"""What `benchmarks/` and `experiments/` share: the machine a result ran on (`machine`), timing of
jitted functions (`timing`), the inputs of the attention benchmarks (`inputs`), a config's training
step on a synthetic batch (`step`) and the markdown tables of stored benchmark results (`tables`),
so that both leaves import only from the package."""
