"""What an experiment is: which tasks to build (:class:`TaskSpec`) and the search plus
the reference's experiment protocol (:class:`ExperimentConfig`)."""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from evojax_zero.experiment.overrides import ConfigError
from evojax_zero.program import tasks
from evojax_zero.program.ops import SUPPORTED_FEATURE_SIZES
from evojax_zero.search.hurdles import HurdleConfig
from evojax_zero.search.islands import IslandConfig
from evojax_zero.search.loop import SearchConfig

DIGITS_HELD_OUT = ((0, 5), (0, 9), (1, 8), (2, 9), (3, 5), (3, 6), (3, 8), (4, 6), (8, 9))
TASK_KINDS = ("linear", "teacher", "digits")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How to build a batch of tasks (seeds None = the reference's defaults)."""

    kind: str = "linear"
    num_tasks: int = 10
    num_train: int = 100
    num_valid: int = 100
    feature_size: int = 4
    param_seeds: tuple | None = None
    data_seeds: tuple | None = None
    held_out: bool = False  # digits: use the held-out pairs (else the others)

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"TaskSpec.kind must be one of {TASK_KINDS}, got {self.kind!r}")
        lo = 0 if self.kind == "digits" else 1  # digits take their splits from the dataset
        for name, low in (("num_tasks", 1), ("num_train", lo), ("num_valid", lo)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
                raise ValueError(f"TaskSpec.{name} must be an int >= {low}, got {v!r}")
        if self.feature_size not in SUPPORTED_FEATURE_SIZES:
            raise ValueError(f"TaskSpec.feature_size must be one of {SUPPORTED_FEATURE_SIZES}, "
                             f"got {self.feature_size!r}")
        for name in ("param_seeds", "data_seeds"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, tuple | list) or not v or not all(
                    isinstance(x, int | np.integer) and not isinstance(x, bool) for x in v)):
                raise ValueError(f"TaskSpec.{name} must be None or a non-empty tuple of ints, "
                                 f"got {v!r}")

    def build(self, rng: np.random.Generator | None = None) -> tasks.Tasks:
        """Tasks; with ``rng`` the seeds are redrawn (``--randomize_task_seeds``)."""
        ps, ds = self.param_seeds, self.data_seeds
        if rng is not None:
            ps = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
            ds = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
        if self.kind == "linear":
            return tasks.linear_regression(self.num_tasks, self.feature_size, self.num_train,
                                           self.num_valid, 1, ps, ds)
        if self.kind == "teacher":
            return tasks.teacher_regression(self.num_tasks, self.feature_size, self.num_train,
                                            self.num_valid, 1, ps, ds)
        pairs, seeds = self.digit_pairs(ds)
        return tasks.projected_binary(pairs, seeds, self.feature_size)

    def digit_pairs(self, data_seeds=None) -> tuple[list, list]:
        """digits: the (pos, neg) pair and split/projection seed of every task."""
        ds = self.data_seeds if data_seeds is None else data_seeds
        pairs_pool = [p for p in tasks.all_digit_pairs()
                      if (tuple(sorted(p)) in DIGITS_HELD_OUT) == self.held_out]
        seeds = tasks.task_seeds(self.num_tasks, ds, (0,))
        pick = np.random.default_rng(seeds[0] + 856572777)
        pairs = [pairs_pool[i] for i in pick.integers(0, len(pairs_pool), self.num_tasks)]
        return pairs, [s % 100 for s in seeds]

    def build_with_test(self):
        """digits: ``(tasks, [(test_x, test_y), ...])`` with the held-back test split."""
        if self.kind != "digits":
            raise ValueError("build_with_test is for digits tasks")
        pairs, seeds = self.digit_pairs()
        return tasks.projected_binary(pairs, seeds, self.feature_size, return_test=True)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A search plus the reference's experiment protocol.

    ``hurdle``: evaluate children through a hurdle (:class:`HurdleConfig`; None = off);
    ``islands``: run :class:`IslandConfig` ``num_islands`` populations of
    ``search.population_size`` each, with ring migration (None = one population). Both may
    be combined, with each other and with the FEC.
    """

    name: str
    search: SearchConfig
    search_tasks: TaskSpec
    select_tasks: TaskSpec
    final_tasks: TaskSpec
    max_train_steps: int = 200_000_000
    sufficient_fitness: float = 0.9999
    max_experiments: int = 1
    randomize_task_seeds: bool = False
    progress_every: int = 10000
    hurdle: HurdleConfig | None = None
    islands: IslandConfig | None = None

    def __post_init__(self):
        for n in ("max_train_steps", "max_experiments", "progress_every"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"ExperimentConfig.{n} must be an int >= 0, got {v!r}")
        f = self.sufficient_fitness
        if isinstance(f, bool) or not isinstance(f, int | float) or not np.isfinite(f):
            raise ValueError(f"ExperimentConfig.sufficient_fitness must be a finite number, "
                             f"got {f!r}")
        for n in ("search_tasks", "select_tasks", "final_tasks"):
            if not isinstance(getattr(self, n), TaskSpec):
                raise ValueError(f"ExperimentConfig.{n} must be a TaskSpec")
        if not isinstance(self.search, SearchConfig):
            raise ValueError("ExperimentConfig.search must be a SearchConfig")
        if self.hurdle is not None:
            if not isinstance(self.hurdle, HurdleConfig):
                raise ConfigError(f"ExperimentConfig.hurdle must be a HurdleConfig or None, got "
                                  f"{type(self.hurdle).__name__}")
            T = self.search_tasks.num_tasks
            if self.hurdle.num_tasks >= T:
                raise ConfigError(
                    f"hurdle_tasks (ExperimentConfig.hurdle.num_tasks): expected an int in "
                    f"[1, {T - 1}] (below search_num_tasks={T}), got {self.hurdle.num_tasks}; "
                    f"fix: e.g. hurdle_tasks={max(1, T // 5)}, or more search tasks")
        if self.islands is not None:
            if not isinstance(self.islands, IslandConfig):
                raise ConfigError(f"ExperimentConfig.islands must be an IslandConfig or None, "
                                  f"got {type(self.islands).__name__}")
            P = self.search.population_size
            if self.islands.num_migrants > P:
                raise ConfigError(
                    f"islands_migrants (ExperimentConfig.islands.num_migrants): expected an int "
                    f"in [0, {P}] (at most population_size), got {self.islands.num_migrants}; "
                    f"fix: e.g. islands_migrants=1")


# The hurdle_* and islands_* override keys' values when a preset does not set them: no
# hurdle, one population. When switched on: the hurdle is the 75th percentile of the
# population's fitness and islands migrate their best member every generation (see
# docs/hurdles_islands.md for where these come from).
OPTION_DEFAULTS = {"hurdle_tasks": 0, "hurdle_kind": "percentile", "hurdle_percentile": 75.0,
                   "hurdle_threshold": 0.5, "islands_count": 1, "islands_migration_every": 1,
                   "islands_migrants": 1}


def search_options(values: dict) -> dict:
    """``ExperimentConfig``'s ``hurdle=`` and ``islands=`` from the override values
    (``hurdle_*``, ``islands_*``; missing keys take :data:`OPTION_DEFAULTS`)."""
    v = {**OPTION_DEFAULTS, **{k: values[k] for k in OPTION_DEFAULTS if k in values}}
    hurdle = islands = None
    if v["hurdle_tasks"]:
        kind = v["hurdle_kind"]
        hurdle = HurdleConfig(
            int(v["hurdle_tasks"]),
            threshold=float(v["hurdle_threshold"]) if kind == "threshold" else None,
            percentile=(float(v["hurdle_percentile"]) if kind == "percentile"
                        else "mean" if kind == "mean" else None))
    if v["islands_count"] > 1:
        islands = IslandConfig(int(v["islands_count"]), int(v["islands_migration_every"]),
                               int(v["islands_migrants"]))
    return {"hurdle": hurdle, "islands": islands}


# ---------------------------------------------------------------------------------------
# The arguments of a run (``experiment.run`` and the CLI), checked before any work
# ---------------------------------------------------------------------------------------

MAX_SEED = 2**32 - 1  # jax.random.key keeps 32 bits of the seed (x64 off)
_PY_NAMES = {"seed": "seed", "out": "out_dir", "checkpoint_dir": "checkpoint_dir",
             "checkpoint_every": "checkpoint_every", "checkpoint_seconds": "checkpoint_seconds",
             "devices": "num_devices"}
CLI_NAMES = {"seed": "--seed", "out": "--out", "checkpoint_dir": "--checkpoint-dir",
             "checkpoint_every": "--checkpoint-every",
             "checkpoint_seconds": "--checkpoint-seconds", "devices": "--devices"}


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in [0, 2**32 - 1] or a :class:`ConfigError` naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) \
            or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name}: expected an int in [0, {MAX_SEED}], got {seed!r}; "
                          f"fix: e.g. {name.split(': ')[-1]} 0")
    return int(seed)


def check_run(config: ExperimentConfig, seed, *, out_dir=None, checkpoint_dir=None,
              checkpoint_every=None, checkpoint_seconds=None, num_devices=None,
              names: dict | None = None) -> None:
    """Check the arguments of ``experiment.run`` up front (``names`` maps them to the CLI's
    flags); raises :class:`ConfigError` naming the argument, the allowed values and the fix."""
    n = {**_PY_NAMES, **(names or {})}
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"config must be an ExperimentConfig (e.g. experiment.preset('demo')),"
                          f" got {type(config).__name__}")
    check_seed(seed, n["seed"])
    ce = checkpoint_every
    if ce is not None and (isinstance(ce, bool) or not isinstance(ce, int | np.integer)
                           or ce < 1):
        raise ConfigError(f"{n['checkpoint_every']}: expected an int >= 1 (generations between "
                          f"checkpoints), got {ce!r}; fix: e.g. {n['checkpoint_every']} 10")
    cs = checkpoint_seconds
    if cs is not None and (isinstance(cs, bool) or not isinstance(cs, int | float | np.number)
                           or not np.isfinite(cs) or cs <= 0):
        raise ConfigError(f"{n['checkpoint_seconds']}: expected a number > 0 (seconds between "
                          f"checkpoints), got {cs!r}; fix: e.g. {n['checkpoint_seconds']} 60")
    for key, d in (("out", out_dir), ("checkpoint_dir", checkpoint_dir)):
        if d is None:
            continue
        if not isinstance(d, str | os.PathLike) or not os.fspath(d):
            raise ConfigError(f"{n[key]}: expected a directory path, got {d!r}")
        if os.path.exists(d) and not os.path.isdir(d):
            raise ConfigError(f"{n[key]}: {os.fspath(d)!r} exists and is not a directory; "
                              f"fix: give a new or existing directory")
        parent = _existing_parent(os.fspath(d))
        if not os.path.isdir(parent):
            raise ConfigError(f"{n[key]}: cannot create {os.fspath(d)!r}: {parent!r} is a "
                              f"file; fix: give a directory path")
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"{n[key]}: {parent!r} is not writable; fix: give a directory "
                              f"you can write to")
    if config.islands is not None:
        check_island_devices(num_devices, config.islands.num_islands, n["devices"])
        if num_devices is not None and num_devices > 1 and config.search.fec is not None:
            raise ConfigError(
                f"{n['devices']} {num_devices}: islands with the FEC share one cache and run "
                f"on one device; fix: fec=false to spread the islands over devices, or drop "
                f"{n['devices']}")
    else:
        check_devices(num_devices, config.search.population_size, n["devices"])


def _existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_devices(num_devices, population_size: int, name: str = "num_devices") -> None:
    """``num_devices`` must be available and divide the population (see README)."""
    if num_devices is None:
        return
    if isinstance(num_devices, bool) or not isinstance(num_devices, int | np.integer) \
            or num_devices < 1:
        raise ConfigError(f"{name}: expected an int >= 1, got {num_devices!r}")
    if population_size % num_devices:
        ok = [d for d in range(1, min(population_size, 16) + 1) if population_size % d == 0]
        raise ConfigError(
            f"{name} {num_devices}: the population ({population_size}) is sharded evenly over "
            f"the devices, so population_size must be divisible by {name}; fix: {name} one of "
            f"{ok}, or population_size a multiple of {num_devices}")
    have = jax.device_count()
    if num_devices > have:
        platform = jax.default_backend()
        raise ConfigError(
            f"{name} {num_devices}: JAX sees {have} {platform} device(s). On a CPU, start Python "
            f"with XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} in the "
            f"environment (e.g. XLA_FLAGS=--xla_force_host_platform_device_count={num_devices}"
            f" python -m evojax_zero run ...); on a GPU host, ask for at most the number of "
            f"visible GPUs (nvidia-smi -L; CUDA_VISIBLE_DEVICES), or run on several hosts "
            f"(docs/multihost.md); fix: {name} {have} or fewer, or more devices as above")


def check_island_devices(num_devices, num_islands: int, name: str = "num_devices") -> None:
    """With islands the devices take whole islands: ``num_devices`` must divide
    ``islands_count`` (and be available)."""
    if num_devices is None:
        return
    if isinstance(num_devices, bool) or not isinstance(num_devices, int | np.integer) \
            or num_devices < 1:
        raise ConfigError(f"{name}: expected an int >= 1, got {num_devices!r}")
    if num_islands % num_devices:
        ok = [d for d in range(1, num_islands + 1) if num_islands % d == 0]
        raise ConfigError(
            f"{name} {num_devices}: with islands each device evolves whole islands, so "
            f"islands_count ({num_islands}) must be divisible by {name}; fix: {name} one of "
            f"{ok}, or islands_count a multiple of {num_devices}")
    check_devices(num_devices, num_devices, name)  # availability
