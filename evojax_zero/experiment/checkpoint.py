"""Checkpoints of a running experiment with orbax (no pickled arrays).

A checkpoint holds the device state (population, fitness, oldest pointer, counters and
the search key as raw key data) as an orbax PyTree, restored into a ``jax.eval_shape``
target, plus a JSON item with the host side: experiment index, exact train-step and
individual counters, the best program so far (plain lists), the fitness history and the
FEC cache (hash, fitness, count in LRU order). Orbax finalizes a step atomically, so a run
killed at any moment resumes from its last complete checkpoint.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from evojax_zero.search.loop import SearchState


def _device_tree(state: SearchState):
    return {"evolution": state.evolution, "key_data": jax.random.key_data(state.key)}


class Checkpointer:
    """Save / restore ``(SearchState, host dict)`` pairs under ``directory``."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=False),
            item_names=("state", "host"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: SearchState, host: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_device_tree(state)),
            host=ocp.args.JsonSave(host)))
        self.manager.wait_until_finished()

    def restore(self, like: SearchState, step: int | None = None):
        """Restore into the shapes/dtypes/shardings of ``like`` (a state or an
        ``eval_shape`` of one). Returns ``(state, host)``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint in {self.directory}")
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
            _device_tree_abstract(like))
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), host=ocp.args.JsonRestore()))
        tree = out["state"]
        state = SearchState(tree["evolution"], jax.random.wrap_key_data(tree["key_data"]))
        return state, out["host"]

    def restore_host(self, step: int | None = None) -> dict | None:
        """Only the JSON host item of the latest (or given) checkpoint; None if none."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        out = self.manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore()))
        return out["host"]

    def close(self) -> None:
        self.manager.close()


def _device_tree_abstract(like: SearchState):
    evo = like.evolution
    key_data = jax.eval_shape(jax.random.key_data, like.key)
    return {"evolution": evo, "key_data": key_data}


def cache_to_json(arrays: dict[str, np.ndarray]) -> dict:
    return {"keys": [int(k) for k in arrays["keys"]],
            "fitness": [float(f) for f in arrays["fitness"]],
            "count": [int(c) for c in arrays["count"]],
            "stats": [int(s) for s in arrays["stats"]]}


def cache_from_json(d: dict) -> dict[str, np.ndarray]:
    return {"keys": np.array(d["keys"], np.uint64), "fitness": np.array(d["fitness"]),
            "count": np.array(d["count"], np.int64), "stats": np.array(d["stats"], np.int64)}
