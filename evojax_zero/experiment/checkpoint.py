"""Checkpoints of a run of experiments with orbax: a :class:`RunState` per step.

A step holds ``meta`` (JSON: the run's identity -- seed and every config field -- and the
run state's scalars, best program, history and counters) and, while an experiment runs,
``state`` (the search's device arrays, restored into a ``jax.eval_shape`` target) and
``cache`` (the FEC cache as fixed-shape arrays). Orbax finalizes a step atomically, so a
run killed at any moment (also during a save) resumes from its last complete step.

Never losing work: a run whose identity differs from the checkpoint's refuses with a
``ValueError`` naming the field before anything is written; a step that cannot be read
(truncated state file, meta or a missing item) is skipped with a warning in favour of the
previous intact one; steps are numbered past every existing step, so nothing is
overwritten, and only the oldest steps beyond ``max_to_keep`` are rotated out by saves
that follow a successful resume.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import TYPE_CHECKING

import jax
import numpy as np
import orbax.checkpoint as ocp

from evojax_zero.experiment.state import RunState
from evojax_zero.search.fec import check_arrays, empty_arrays
from evojax_zero.search.loop import SearchState

if TYPE_CHECKING:
    from evojax_zero.experiment.config import ExperimentConfig

FORMAT = 2  # version of the step layout (meta / state / cache items)


def config_fields(obj, prefix: str = "") -> dict[str, str]:
    """Every leaf field of a (nested) config dataclass as ``{"search.fec.mode": repr}``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, str] = {}
        for f in dataclasses.fields(obj):
            out.update(config_fields(getattr(obj, f.name), f"{prefix}{f.name}."))
        return out
    return {prefix[:-1]: repr(obj)}


def run_identity(config: ExperimentConfig, seed: int) -> dict[str, str]:
    """What must match for a checkpoint to be resumed: the seed and every config field."""
    return {"seed": repr(int(seed)), **config_fields(config)}


class Checkpointer:
    """Save / restore :class:`RunState` steps of one run (``identity``) under ``directory``."""

    def __init__(self, directory: str, identity: dict[str, str], max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"checkpoint_dir {directory!r} is a file; pass a directory")
        self.identity = identity
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=False),
            item_names=("meta", "state", "cache"))
        # Past every step, finished or not: a save interrupted by a kill leaves an unfinished
        # step directory ("N.orbax-checkpoint-tmp..."), which is never reused or removed.
        taken = [int(name.split(".")[0]) for name in os.listdir(self.directory)
                 if name.split(".")[0].isdigit()]
        self._next_step = max([*taken, *self.manager.all_steps()], default=-1) + 1

    # -- saving -------------------------------------------------------------------------

    def save(self, run: RunState) -> int:
        """Write ``run`` as a new step; returns its number."""
        items = {"meta": ocp.args.JsonSave({"format": FORMAT, "identity": self.identity,
                                            "run": run.meta()})}
        if run.in_experiment:
            items["state"] = ocp.args.StandardSave(_device_tree(run.search))
            if run.cache is not None:
                items["cache"] = ocp.args.StandardSave(
                    {k: np.asarray(v) for k, v in run.cache.items()})
        step = self._next_step
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)
        self.manager.wait_until_finished()
        self._next_step = step + 1
        return step

    # -- restoring ----------------------------------------------------------------------

    def restore(self, like: SearchState, cache_size: int | None) -> RunState | None:
        """The newest intact step as a :class:`RunState` (None when there is none yet).

        ``like``: the search state's shapes (``jax.eval_shape``); ``cache_size``: the FEC
        cache size (None without FEC). Raises ``ValueError`` when the checkpoint belongs to
        another run (naming the first differing field) or when no step is readable.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        problems = []
        for step in steps:
            try:
                meta = self._read(step, "meta", ocp.args.JsonRestore())
            except Exception as e:  # noqa: BLE001 - any unreadable step: try the previous
                problems.append(f"step {step}: meta unreadable ({type(e).__name__}: {e})")
                continue
            if not isinstance(meta, dict) or meta.get("format") != FORMAT \
                    or not isinstance(meta.get("identity"), dict):
                raise ValueError(f"checkpoint {self.directory} step {step} was not written by "
                                 f"this version of evojax_zero (format {FORMAT}); nothing was "
                                 "changed there. Pass another checkpoint directory")
            self._check_identity(meta["identity"], step)
            try:
                run = self._restore_run(step, meta["run"], like, cache_size)
            except Exception as e:  # noqa: BLE001
                problems.append(f"step {step}: {type(e).__name__}: {e}")
                continue
            if problems:
                warnings.warn(f"checkpoint {self.directory}: skipped unreadable steps "
                              f"({'; '.join(problems)}); resuming from step {step}",
                              RuntimeWarning, stacklevel=2)
            return run
        if problems:
            raise ValueError(f"checkpoint {self.directory} has no intact step "
                             f"({'; '.join(problems)}); nothing was changed there. Move it "
                             "away or pass another checkpoint directory")
        return None

    def _check_identity(self, saved: dict, step: int) -> None:
        for name in sorted(set(saved) | set(self.identity)):
            a, b = saved.get(name, "<absent>"), self.identity.get(name, "<absent>")
            if {a, b} == {"<absent>", "None"} and not any(
                    k.startswith(name + ".") for k in (*saved, *self.identity)):
                continue  # an option added since (hurdle, islands), off in both runs
            if a != b:
                raise ValueError(
                    f"checkpoint {self.directory} (step {step}) belongs to another run: "
                    f"{name} was {a}, this run has {b}. Nothing was changed there; resume "
                    "with the same settings or pass another checkpoint directory")

    def _read(self, step: int, item: str, args):
        return self.manager.restore(step, args=ocp.args.Composite(**{item: args}))[item]

    def _restore_run(self, step: int, meta: dict, like: SearchState,
                     cache_size: int | None) -> RunState:
        run = RunState.from_meta(meta)
        if not run.in_experiment:
            return run
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                              _device_tree(like, abstract=True))
        tree = self._read(step, "state", ocp.args.StandardRestore(target))
        run.search = SearchState(tree["evolution"], jax.random.wrap_key_data(tree["key_data"]))
        if cache_size is not None:
            cache = self._read(step, "cache", ocp.args.StandardRestore(
                empty_arrays(cache_size)))
            cache = {k: np.asarray(v) for k, v in cache.items()}
            check_arrays(cache, cache_size)
            run.cache = cache
        return run

    def close(self) -> None:
        self.manager.close()


def _device_tree(state: SearchState, abstract: bool = False):
    key_data = (jax.eval_shape(jax.random.key_data, state.key) if abstract
                else jax.random.key_data(state.key))
    return {"evolution": state.evolution, "key_data": key_data}
