"""A small search loop: steps, logging, collapse diagnostics, checkpoints, NaN guard.

``run(algorithm, batches, num_steps, key=...)`` calls ``algorithm.step`` with
``batches(step) -> (train_batch, valid_batch)`` and the key ``fold_in(key, step)`` (so a
resumed run draws exactly what an uninterrupted one would). Every ``log_every`` steps it
appends the step's metrics (floats) to the history; every ``hessian_every`` steps it adds
``hessian_eigenvalue`` (algorithms with ``alpha`` only). With ``checkpoint_dir`` it saves
the state and history every ``checkpoint_every`` steps (orbax, atomic) and resumes from
the latest checkpoint there.

NaN guard: a step whose loss or gradient is not finite returns its input state unchanged
(``metrics["finite"] == False``); the driver then raises a ``ValueError`` naming the step
(``on_nan="raise"``, default) without saving anything, so the last checkpoint is intact
and a rerun resumes from it; ``on_nan="skip"`` logs the step and continues with the
unchanged state.

On the CPU, ``run`` first calls :func:`nas.weight_sharing.host_memory.keep_freed_memory`
(``keep_freed_memory=None``, the default; ``False`` leaves the C allocator alone): without
it every DARTS step page-faults on a fresh temporary buffer, and the second-order step of
the speed benchmark ran at 0.8x PyTorch's rate instead of 1.26x (2026-12-02).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from nas.weight_sharing import host_memory
from nas.weight_sharing.base import WeightSharingAlgorithm

ON_NAN = ("raise", "skip")


class Checkpointer:
    """Save / restore ``(state, history)`` of a search under ``directory`` (orbax)."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=False),
            item_names=("state", "host"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, history: list[dict]) -> None:
        leaves = jax.tree.leaves(state)
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave({str(i): x for i, x in enumerate(leaves)}),
            host=ocp.args.JsonSave({"history": history, "num_leaves": len(leaves)})))
        self.manager.wait_until_finished()

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, list[dict], int]:
        """``(state, history, step)`` restored into the structure of ``like``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint in {self.directory}")
        leaves, treedef = jax.tree.flatten(like)
        target = {str(i): jax.ShapeDtypeStruct(np.shape(x), x.dtype)
                  for i, x in enumerate(leaves)}
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), host=ocp.args.JsonRestore()))
        host = out["host"]
        if host["num_leaves"] != len(leaves):
            raise ValueError(
                f"checkpoint in {self.directory} holds {host['num_leaves']} arrays, the "
                f"algorithm's state {len(leaves)}: it belongs to another supernet or algorithm")
        restored = [out["state"][str(i)] for i in range(len(leaves))]
        return jax.tree.unflatten(treedef, restored), host["history"], step

    def close(self) -> None:
        self.manager.close()


def _floats(metrics: dict) -> dict:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


def run(algorithm: WeightSharingAlgorithm,
        batches: Callable[[int], tuple[Any, Any]],
        num_steps: int,
        *,
        key: jax.Array,
        state: Any = None,
        log_every: int = 1,
        hessian_every: int = 0,
        hessian_iters: int = 20,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 100,
        on_nan: str = "raise",
        callback: Callable[[int, dict], None] | None = None,
        keep_freed_memory: bool | None = None) -> tuple[Any, list[dict]]:
    """Run ``num_steps`` steps (from a checkpoint's step if one exists); returns
    ``(state, history)``."""
    if on_nan not in ON_NAN:
        raise ValueError(f"run.on_nan must be one of {ON_NAN}, got {on_nan!r}")
    if keep_freed_memory not in (None, True, False):
        raise ValueError(
            f"run.keep_freed_memory must be None (on the CPU only), True or False, got "
            f"{keep_freed_memory!r}")
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"run.num_steps must be an int >= 0, got {num_steps!r}")
    if log_every < 1:
        raise ValueError(f"run.log_every must be >= 1, got {log_every}")
    if keep_freed_memory or (keep_freed_memory is None and jax.default_backend() == "cpu"):
        host_memory.keep_freed_memory()
    state = algorithm.init() if state is None else state
    hkey = jax.random.fold_in(key, 2**31 - 1)  # a stream apart from the steps'
    history: list[dict] = []
    start = 0
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir else None
    try:
        if ckpt is not None and ckpt.latest_step() is not None:
            state, history, start = ckpt.restore(state)
        for i in range(start, num_steps):
            train_batch, valid_batch = batches(i)
            new, metrics = algorithm.step(state, train_batch, valid_batch,
                                          jax.random.fold_in(key, i))
            finite = bool(metrics["finite"])
            if not finite and on_nan == "raise":
                last = ckpt.latest_step() if ckpt is not None else None
                raise ValueError(
                    f"step {i}: non-finite loss or gradient in the supernet; the state was "
                    f"not updated and nothing was saved (last checkpoint: "
                    f"{'none' if last is None else f'step {last}'}). Lower the learning "
                    "rate or fix the data, then rerun to resume; on_nan='skip' continues "
                    "past such steps")
            state = new
            if i % log_every == 0 or i == num_steps - 1 or not finite:
                record = {"step": i, **_floats(metrics)}
                if hessian_every and i % hessian_every == 0 and hasattr(state, "a_opt"):
                    record["hessian_eigenvalue"] = float(algorithm.hessian_eigenvalue(
                        state, valid_batch, jax.random.fold_in(hkey, i), hessian_iters))
                history.append(record)
                if callback is not None:
                    callback(i, record)
            if ckpt is not None and ((i + 1) % checkpoint_every == 0 or i == num_steps - 1):
                ckpt.save(i + 1, state, history)
    finally:
        if ckpt is not None:
            ckpt.close()
    return state, history
