"""Fitness from an error: the reference's squash of an RMS error into (0, 1].

Shared by the XLA evaluator and the native kernels' wrappers, so both compute the same
XLA expression and agree bit for bit.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Cephes' atan: rational approximation after range reduction (max error ~1 ulp in float64).
_ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
           -1.228866684490136173410e2, -6.485021904942025371773e1)
_ATAN_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
           4.853903996359136964868e2, 1.945506571482613964425e2)
_MOREBITS = 6.123233995736765886130e-17


def atan(x: jax.Array) -> jax.Array:
    """atan from +, *, / only. XLA CPU's atan/atan2 give last bits that depend on the
    batch size (vectorised vs scalar code), which would make results depend on the
    number of devices; plain arithmetic does not."""
    dt = x.dtype
    a = jnp.abs(x)
    big = a > 2.414213562373095  # tan(3 pi / 8)
    mid = (a > 0.66) & ~big
    xr = jnp.where(big, -1.0 / jnp.where(big, a, 1.0),
                   jnp.where(mid, (a - 1.0) / (a + 1.0), a))
    y0 = jnp.where(big, math.pi / 2, jnp.where(mid, math.pi / 4, 0.0)).astype(dt)
    more = jnp.where(big, _MOREBITS, jnp.where(mid, 0.5 * _MOREBITS, 0.0)).astype(dt)
    z = xr * xr
    p = (((_ATAN_P[0] * z + _ATAN_P[1]) * z + _ATAN_P[2]) * z + _ATAN_P[3]) * z + _ATAN_P[4]
    q = ((((z + _ATAN_Q[0]) * z + _ATAN_Q[1]) * z + _ATAN_Q[2]) * z + _ATAN_Q[3]) * z + _ATAN_Q[4]
    out = jnp.where(x < 0, -1.0, 1.0).astype(dt) * (y0 + (xr * (z * p / q) + xr + more))
    return jnp.where((x == 0) | jnp.isnan(x), x, out)


MINUS_TWO_OVER_PI = -0.63661977236758138243


def flip_and_squash(rms: jax.Array) -> jax.Array:
    """1 - (2/pi) atan(rms); 0 for NaN or inf."""
    return jnp.where(jnp.isfinite(rms), 1.0 + MINUS_TWO_OVER_PI * atan(rms), 0.0)


assert math.isclose(MINUS_TWO_OVER_PI, -2 / math.pi)
