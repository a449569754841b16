"""The known data sets (`DATASETS`: files, checksums, calendar, split, null value of each) and
where their files are looked up: the ``data_dir`` argument, else the ``EALA_DATA_DIR`` environment
variable, else ``../shared/data`` beside the repository when it exists; each set in its own folder
there (``los_loop/``, ``pems08/`` or ``PEMS08/``, ...)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from eala_jax.data.readers import FileSpec
from eala_jax.data.series import MINUTES_PER_DAY, Split

__all__ = [
    "DATASETS",
    "ENV_DATA_DIR",
    "ETT_STEPS",
    "KNOWN_NAMES",
    "SPECIAL_DATASETS",
    "DatasetSpec",
    "benchmark_split_fractions",
    "default_data_dir",
    "download_target",
    "locate_signal",
    "resolve_data_dir",
]

ENV_DATA_DIR = "EALA_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What is known of a data set: where its files are, their checksums, calendar, split and null
    value.

    ``graphs`` are candidates tried in order, relative to the set's folder (``../pems_graphs/..``
    reaches the shared graphs of the PEMS sets); the first that exists is used and named in
    ``series.source``. ``shape`` is the published ``(T, N)``, checked unless ``check_shape=False``.
    """

    name: str
    description: str
    folders: tuple[str, ...]
    signal: FileSpec
    step_minutes: int
    start_time: str | None  # None: taken from the file's timestamps
    default_split: Split
    null_value: float | None
    graphs: tuple[FileSpec, ...] = ()
    shape: tuple[int, int] | None = None
    csv_header: bool = True
    time_column: str | None = None
    node_ids_file: str | None = None  # e.g. PEMS03.txt: sensor ids that its distance.csv uses
    in_shared: bool = False  # shipped in ../shared/data for developers and CI


def _pems(
    number: str,
    shape: tuple[int, int],
    start: str,
    graph: FileSpec,
    node_ids_file: str | None = None,
) -> DatasetSpec:
    upper = f"PEMS{number}"
    return DatasetSpec(
        name=f"pems{number}",
        description=(
            f"{upper} traffic flow (channel 0 of {upper}.npz, ASTGCN/STSGCN release), 5 min"
        ),
        folders=(f"pems{number}", upper),
        signal=FileSpec(f"{upper}.npz"),
        graphs=(FileSpec(f"{upper}.csv"), FileSpec("distance.csv"), graph),
        step_minutes=5,
        start_time=start,
        default_split=(0.6, 0.2, 0.2),
        null_value=0.0,
        shape=shape,
        node_ids_file=node_ids_file,
    )


def benchmark_split_fractions(num_steps: int, split: Split) -> Split:
    """Fractions that `split_boundaries` turns into the long-horizon benchmarks' cut (Autoformer /
    DLinear / PatchTST code): `int(T·train)` training steps, `int(T·test)` test steps, the rest
    validation. (Rounding, as `split_boundaries` does with plain fractions, can be a step off.)"""
    train, _, test = split
    num_train, num_test = int(num_steps * train), int(num_steps * test)
    num_val = num_steps - num_train - num_test
    return (num_train / num_steps, num_val / num_steps, num_test / num_steps)


#: The long-horizon benchmarks' ETT cut (Zhou et al., Informer, AAAI 2021, and every paper since):
#: 12 months of training, 4 of validation, 4 of test (30-day months), the remaining 4 months of the
#: 17,420 hourly steps unused: train steps [0, 8640), val [8640, 11520), test [11520, 14400).
ETT_STEPS = 17420
ETT_SPLIT: Split = (12 * 30 * 24 / ETT_STEPS, 4 * 30 * 24 / ETT_STEPS, 4 * 30 * 24 / ETT_STEPS)

# Sizes and SHA-256 are recorded for the files in ../shared/data (computed from those files). For
# the full PEMS0X / METR-LA / PEMS-BAY releases this project does not know the published hashes, so
# none are recorded; their shapes (T, N) are checked instead. Pass sha256= to check a file against a
# known hash.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="los_loop",
            description=(
                "Los-loop: speed (mph) of 207 METR-LA sensors, 2012-03-01..07 (T-GCN release), 5"
                " min"
            ),
            folders=("los_loop",),
            signal=FileSpec(
                "los_speed.csv",
                3402125,
                "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
            ),
            graphs=(
                FileSpec(
                    "adj_mx.pkl",
                    177422,
                    "64997ab26db6ffdd2f6d57c8c12da6aedcb3efc2729b46ab4cc48e8c7ad1e5e8",
                ),
            ),
            step_minutes=5,
            start_time="2012-03-01T00:00",
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(2016, 207),
            in_shared=True,
        ),
        DatasetSpec(
            name="sz_taxi",
            description=(
                "SZ-taxi: taxi speed on 156 Luohu (Shenzhen) roads, 2015-01 (ST-CGCN release),"
                " 15 min"
            ),
            folders=("sz_taxi",),
            signal=FileSpec(
                "SZ_taxi.npz",
                3714310,
                "b6f2008136f7223bf94adb6484da42b4f1235366eeff91dac38cb075ca916301",
            ),
            graphs=(
                FileSpec(
                    "SZ_taxi_adj.csv",
                    48672,
                    "4e40e865b29d73df8404f6cc4c1a0c5ba55aa575aef97a4e9ce4fcd30aad16d6",
                ),
            ),
            step_minutes=15,
            start_time="2015-01-01T00:00",
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(2976, 156),
            in_shared=True,
        ),
        DatasetSpec(
            name="etth1",
            description=(
                "ETTh1: 7 variables of an electricity transformer (OT = oil temperature), hourly"
            ),
            folders=("ett",),
            signal=FileSpec(
                "ETTh1.csv",
                2589657,
                "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            ),
            step_minutes=60,
            start_time=None,
            default_split=ETT_SPLIT,
            null_value=None,  # zeros are real readings here
            shape=(17420, 7),
            time_column="date",
            in_shared=True,
        ),
        DatasetSpec(
            name="etth2",
            description="ETTh2: 7 variables of a second electricity transformer, hourly",
            folders=("ett",),
            signal=FileSpec(
                "ETTh2.csv",
                2417960,
                "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
            ),
            step_minutes=60,
            start_time=None,
            default_split=ETT_SPLIT,
            null_value=None,
            shape=(17420, 7),
            time_column="date",
            in_shared=True,
        ),
        DatasetSpec(
            name="exchange_rate",
            description=(
                "exchange_rate: daily rates of 8 currencies (LSTNet release; dates not in the"
                " file, start 1990-01-01 is nominal)"
            ),
            folders=("lstnet",),
            signal=FileSpec(
                "exchange_rate.txt.gz",
                177142,
                "6a4fbb561dcdee43f071a83badbeec9223a335552278348656738b556f1c2e9d",
            ),
            step_minutes=MINUTES_PER_DAY,
            start_time="1990-01-01T00:00",
            default_split=benchmark_split_fractions(7588, (0.7, 0.1, 0.2)),
            null_value=None,
            shape=(7588, 8),
            csv_header=False,
            in_shared=True,
        ),
        _pems(
            "03",
            (26208, 358),
            "2018-09-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS03_adjmatrix_stcgcn.csv",
                517371,
                "3424e92954cbc2e3d8e4e864c7c07093611081a321f7f0ce6f11bd854c334c30",
            ),
            node_ids_file="PEMS03.txt",
        ),
        _pems(
            "04",
            (16992, 307),
            "2018-01-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS04_distance.csv",
                4852,
                "68ffaa80447eb34428a9999dc28363c61406ec0fd714686d0582d2386ac6f5f7",
            ),
        ),
        _pems(
            "07",
            (28224, 883),
            "2017-05-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS07_adjmatrix_stcgcn.csv",
                3131269,
                "52461735b915764624dbfe8ec212f6916bf63ad0acb9838bd88982bbc91d2524",
            ),
        ),
        _pems(
            "08",
            (17856, 170),
            "2016-07-01T00:00",
            FileSpec(
                "../pems_graphs/PEMS08_distance.csv",
                4032,
                "859d68e7583ed4e6016588eaaca494d3ece286dae361614c5c1833017f87eaa7",
            ),
        ),
        DatasetSpec(
            name="metr_la",
            description=(
                "METR-LA: speed (mph) of 207 Los Angeles loop detectors, 2012-03..06 (DCRNN"
                " release), 5 min"
            ),
            folders=("metr_la", "METR-LA"),
            signal=FileSpec("metr-la.h5"),
            graphs=(FileSpec("adj_mx.pkl"),),
            step_minutes=5,
            start_time=None,
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(34272, 207),
        ),
        DatasetSpec(
            name="pems_bay",
            description=(
                "PEMS-BAY: speed (mph) of 325 Bay Area sensors, 2017-01..05 (DCRNN release), 5 min"
            ),
            folders=("pems_bay", "PEMS-BAY"),
            signal=FileSpec("pems-bay.h5"),
            graphs=(FileSpec("adj_mx_bay.pkl"), FileSpec("adj_mx.pkl")),
            step_minutes=5,
            start_time=None,
            default_split=(0.7, 0.1, 0.2),
            null_value=0.0,
            shape=(52116, 325),
        ),
    )
}
SPECIAL_DATASETS = ("synthetic", "generic")
KNOWN_NAMES = ("synthetic", *DATASETS, "generic")


def default_data_dir() -> Path | None:
    """``$EALA_DATA_DIR`` if set, else ``../shared/data`` beside the repository if it exists, else
    None."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    shared = _REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The data directory that ``read_dataset`` / ``load_dataset`` would search."""
    return Path(data_dir) if data_dir is not None else default_data_dir()


def locate_signal(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    """Path of ``spec``'s signal file under the data directory; FileNotFoundError if absent."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise FileNotFoundError(
            f"{spec.name}: no data directory: pass data_dir= (or set {ENV_DATA_DIR}) to the folder "
            f"holding {spec.folders[0]}/{spec.signal.filename}, or path= to the file itself"
        )
    tried = [root / folder / spec.signal.filename for folder in spec.folders]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{spec.name}: {' or '.join(str(t) for t in tried)} not found: set data_dir= (or "
        f"{ENV_DATA_DIR}) to the folder that holds {spec.folders[0]}/{spec.signal.filename}, or "
        "path= to the file"
    )


def download_target(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    """Where ``url=`` puts ``spec``'s signal: the existing file if any folder holds one, else
    ``<data dir>/<first folder>/<signal file name>``."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise FileNotFoundError(
            f"{spec.name}: url= given but no data directory to download {spec.signal.filename} "
            f"into: pass data_dir= (or set {ENV_DATA_DIR}), or path= to the file to write"
        )
    for folder in spec.folders:
        if (root / folder / spec.signal.filename).is_file():
            return root / folder / spec.signal.filename
    return root / spec.folders[0] / spec.signal.filename
