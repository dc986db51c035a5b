"""What reveals DARTS collapse, per step.

* ``param_free_share``: of the derived architecture's *op* decisions (slots whose
  candidates include both parameter-free and parametric ops), the share that picks a
  parameter-free op (skip, none, pooling). Collapse drives it towards 1.
* ``entropy``: the mean per-decision entropy (nats) of ``softmax(alpha)``; a collapsing
  search becomes confident early (entropy falls), a search that never decides stays
  near ``log(num_choices)``.
* ``hessian_eigenvalue``: the dominant eigenvalue of the validation loss' Hessian with
  respect to ``alpha`` (Zela et al., 2020, "Understanding and Robustifying DARTS"): it
  grows as the search converges to a sharp region where the discretized architecture
  performs badly. Computed by power iteration on Hessian-vector products
  (forward-over-reverse ``jax.jvp(jax.grad(...))``), never forming the Hessian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nas.space import DNA
from nas.weight_sharing.selection import masked_logits, valid_mask


def entropy(space, alpha: jax.Array) -> jax.Array:
    """Mean over decisions of the entropy of ``softmax(alpha)`` (nats)."""
    logp = jax.nn.log_softmax(masked_logits(space, alpha), axis=-1)
    valid = valid_mask(space)
    logp = jnp.where(valid, logp, 0.0)
    return -jnp.mean(jnp.sum(jnp.where(valid, jnp.exp(logp) * logp, 0.0), axis=-1))


def param_free_share(space, ints: jax.Array, param_free: np.ndarray,
                     op_slot: np.ndarray) -> jax.Array:
    """Share of the active op decisions of ``ints`` that pick a parameter-free op."""
    act, _ = space.active(DNA(ints, jnp.asarray(space.float_low)))
    picked = jnp.take_along_axis(jnp.asarray(param_free), ints[:, None], axis=1)[:, 0]
    mask = act & jnp.asarray(op_slot)
    return jnp.sum(picked & mask) / jnp.maximum(jnp.sum(mask), 1)


def dominant_eigenvalue(loss_of_alpha: Callable[[jax.Array], jax.Array], alpha: jax.Array,
                        key: jax.Array, num_iters: int = 20) -> jax.Array:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_of_alpha`` at ``alpha`` by
    power iteration on Hessian-vector products (jittable; ``num_iters`` static)."""
    grad = jax.grad(loss_of_alpha)

    def hvp(v):
        return jax.jvp(grad, (alpha,), (v,))[1]

    v = jax.random.normal(key, alpha.shape, alpha.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, carry):
        v, _lam = carry
        hv = hvp(v)
        lam = jnp.vdot(v, hv)
        return hv / jnp.maximum(jnp.linalg.norm(hv), 1e-30), lam

    _, lam = jax.lax.fori_loop(0, num_iters, body, (v, jnp.zeros((), alpha.dtype)))
    return lam


def plot(history: Sequence[dict], path: str | None = None, title: str = ""):
    """Plot ``param_free_share``, ``entropy`` and ``hessian_eigenvalue`` against step from
    the driver's log (a list of dicts); returns the matplotlib figure, saved if ``path``."""
    import matplotlib  # noqa: PLC0415 - optional plotting dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = ("param_free_share", "entropy", "hessian_eigenvalue")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, k in zip(axes, keys, strict=True):
        pts = [(h["step"], h[k]) for h in history if k in h and np.isfinite(h[k])]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys)
        ax.set_xlabel("step")
        ax.set_title(k)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig
