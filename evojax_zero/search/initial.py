"""Initial programs: the reference's ``HardcodedAlgorithmID`` (generator.cc).

* ``NO_OP``: every function filled with ``size_init`` NO_OPs.
* ``RANDOM``: ``size_init`` random instructions from each function's allowed ops
  (functions with an empty op list stay all NO_OP).
* ``LINEAR``: linear regression by SGD, learning rate 0.01.
* ``NEURAL_NET``: a two-layer ReLU net (hidden size F) with biases, trained by SGD,
  learning rate 0.01, weights ~ N(0, 0.1).
* ``MULTICLASS_NEURAL_NET`` (not in the reference): the same net for multi-class tasks
  (one-hot labels in v1, class scores in v2), trained by SGD on the softmax cross-entropy.
* ``INTEGRATION_TEST_DAMAGED_NEURAL_NET``: NEURAL_NET without its two Gaussian weight
  initialisations (the first two Setup instructions).

Hand-written algorithms are padded with NO_OPs up to ``size_init`` when shorter (never
truncated), as the reference's ``PadComponentFunctionWithInstruction``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence

import jax

from evojax_zero.program.ops import Op
from evojax_zero.program.programs import FUNCTION_NAMES, Program, ProgramSpec, from_lists
from evojax_zero.search.mutation import random_program

DEFAULT_LEARNING_RATE = 0.01
DEFAULT_INIT_SCALE = 0.1


class Algorithm(enum.IntEnum):
    """The reference's ``HardcodedAlgorithmID`` values."""

    NO_OP = 0
    RANDOM = 1
    NEURAL_NET = 2
    INTEGRATION_TEST_DAMAGED_NEURAL_NET = 3
    LINEAR = 4
    MULTICLASS_NEURAL_NET = 5  # not in the reference: NEURAL_NET for multi-class tasks


def as_algorithm(a) -> Algorithm:
    """Coerce a name (``"linear"``, ``"NEURAL_NET_ALGORITHM"``) or id to Algorithm."""
    if isinstance(a, Algorithm):
        return a
    if isinstance(a, str):
        key = a.strip().upper().removesuffix("_ALGORITHM")
        if key in Algorithm.__members__:
            return Algorithm[key]
    elif isinstance(a, int) and not isinstance(a, bool) and a in {m.value for m in Algorithm}:
        return Algorithm(a)
    raise ValueError(f"unknown initial algorithm {a!r}; allowed: "
                     f"{[m.name.lower() for m in Algorithm]}")


def linear_lists(learning_rate: float = DEFAULT_LEARNING_RATE) -> dict[str, list[list]]:
    """LINEAR_ALGORITHM: s2 = lr; s1 = dot(v1, v0); s3 = s0 - s1; s3 = s2 * s3;
    v2 = s3 * v0; v1 = v1 + v2."""
    return {
        "setup": [[Op.SCALAR_CONST_SET, 0, 0, 2, learning_rate]],
        "predict": [[Op.VECTOR_INNER_PRODUCT, 1, 0, 1]],
        "learn": [
            [Op.SCALAR_DIFF, 0, 1, 3],
            [Op.SCALAR_PRODUCT, 2, 3, 3],
            [Op.SCALAR_VECTOR_PRODUCT, 3, 0, 2],
            [Op.VECTOR_SUM, 1, 2, 1],
        ],
    }


def neural_net_lists(learning_rate: float = DEFAULT_LEARNING_RATE,
                     first_init_scale: float = DEFAULT_INIT_SCALE,
                     final_init_scale: float = DEFAULT_INIT_SCALE) -> dict[str, list[list]]:
    """NEURAL_NET_ALGORITHM (needs S >= 5, V >= 9, M >= 2).

    Scalars: s2 final bias, s3 learning rate, s4 error. Vectors: v1 first bias, v2 final
    weights, v3 pre-ReLU, v4 post-ReLU, v5 zeros, v6 grad final weights, v7 grad
    activations, v8 ReLU derivative. Matrices: m0 first weights, m1 their gradient.
    """
    return {
        "setup": [
            [Op.VECTOR_GAUSSIAN_SET, 0, 0, 2, 0.0, 0.0, final_init_scale],
            [Op.MATRIX_GAUSSIAN_SET, 0, 0, 0, 0.0, 0.0, first_init_scale],
            [Op.SCALAR_CONST_SET, 0, 0, 3, learning_rate],
        ],
        "predict": [
            [Op.MATRIX_VECTOR_PRODUCT, 0, 0, 3],  # v3 = m0 v0
            [Op.VECTOR_SUM, 3, 1, 3],  # v3 += v1
            [Op.VECTOR_MAX, 3, 5, 4],  # v4 = relu(v3)
            [Op.VECTOR_INNER_PRODUCT, 4, 2, 1],  # s1 = v4 . v2
            [Op.SCALAR_SUM, 1, 2, 1],  # s1 += s2
        ],
        "learn": [
            [Op.SCALAR_DIFF, 0, 1, 4],  # s4 = y - s1
            [Op.SCALAR_PRODUCT, 3, 4, 4],  # s4 *= lr
            [Op.SCALAR_SUM, 2, 4, 2],  # final bias
            [Op.SCALAR_VECTOR_PRODUCT, 4, 4, 6],  # v6 = s4 v4
            [Op.VECTOR_SUM, 2, 6, 2],  # final weights
            [Op.SCALAR_VECTOR_PRODUCT, 4, 2, 7],  # v7 = s4 v2
            [Op.VECTOR_HEAVYSIDE, 3, 0, 8],  # v8 = relu'(v3)
            [Op.VECTOR_PRODUCT, 8, 7, 7],  # v7 *= v8
            [Op.VECTOR_SUM, 1, 7, 1],  # first bias
            [Op.VECTOR_OUTER_PRODUCT, 7, 0, 1],  # m1 = v7 v0^T
            [Op.MATRIX_SUM, 0, 1, 0],  # first weights
        ],
    }


def multiclass_neural_net_lists(learning_rate: float = DEFAULT_LEARNING_RATE,
                                init_scale: float = DEFAULT_INIT_SCALE) -> dict[str, list]:
    """NEURAL_NET for multi-class tasks (labels one-hot in v1, class scores out in v2, whose
    softmax the evaluator writes back before Learn): a two-layer ReLU net with hidden size F
    and a first-layer bias, trained by SGD on the softmax cross-entropy (needs S >= 3,
    V >= 10, M >= 3).

    Scalars: s2 learning rate. Vectors: v3 pre-ReLU, v4 post-ReLU, v5 zeros, v6 first bias,
    v7 output error, v8 ReLU derivative, v9 hidden error. Matrices: m0 first weights, m1
    second weights, m2 their gradients / m1 transposed.
    """
    return {
        "setup": [
            [Op.MATRIX_GAUSSIAN_SET, 0, 0, 0, 0.0, 0.0, init_scale],
            [Op.MATRIX_GAUSSIAN_SET, 0, 0, 1, 0.0, 0.0, init_scale],
            [Op.SCALAR_CONST_SET, 0, 0, 2, learning_rate],
        ],
        "predict": [
            [Op.MATRIX_VECTOR_PRODUCT, 0, 0, 3],  # v3 = m0 v0
            [Op.VECTOR_SUM, 3, 6, 3],  # v3 += v6
            [Op.VECTOR_MAX, 3, 5, 4],  # v4 = relu(v3)
            [Op.MATRIX_VECTOR_PRODUCT, 1, 4, 2],  # v2 = m1 v4 (class scores)
        ],
        "learn": [
            [Op.VECTOR_DIFF, 1, 2, 7],  # v7 = onehot - softmax
            [Op.SCALAR_VECTOR_PRODUCT, 2, 7, 7],  # v7 *= lr
            [Op.VECTOR_OUTER_PRODUCT, 7, 4, 2],  # m2 = v7 v4^T
            [Op.MATRIX_SUM, 1, 2, 1],  # second weights
            [Op.MATRIX_TRANSPOSE, 1, 0, 2],  # m2 = m1^T
            [Op.MATRIX_VECTOR_PRODUCT, 2, 7, 9],  # v9 = m1^T v7
            [Op.VECTOR_HEAVYSIDE, 3, 0, 8],  # v8 = relu'(v3)
            [Op.VECTOR_PRODUCT, 9, 8, 9],  # v9 *= v8
            [Op.VECTOR_SUM, 6, 9, 6],  # first bias
            [Op.VECTOR_OUTER_PRODUCT, 9, 0, 2],  # m2 = v9 v0^T
            [Op.MATRIX_SUM, 0, 2, 0],  # first weights
        ],
    }


def damaged_neural_net_lists(learning_rate: float = DEFAULT_LEARNING_RATE) -> dict[str, list]:
    """INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM: NEURAL_NET minus its first two Setup
    instructions (the Gaussian weight initialisations)."""
    lists = neural_net_lists(learning_rate)
    lists["setup"] = lists["setup"][2:]
    return lists


def ops_used(lists: dict[str, list[list]]) -> dict[str, tuple[Op, ...]]:
    """Ops each function of a hand-written algorithm uses (to build a ProgramSpec)."""
    return {fn: tuple(sorted({Op(int(r[0])) for r in lists[fn]})) for fn in FUNCTION_NAMES}


def _padded(lists, sizes):
    out = {}
    for fn, n in zip(FUNCTION_NAMES, sizes, strict=True):
        rows = [list(r) for r in lists[fn]]
        rows += [[Op.NO_OP, 0, 0, 0]] * max(0, int(n) - len(rows))
        out[fn] = rows
    return out


def _check_sizes(sizes, spec: ProgramSpec):
    sizes = tuple(sizes)
    if len(sizes) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                              for s in sizes):
        raise ValueError(f"sizes must be three ints >= 0 (setup, predict, learn), got {sizes!r}")
    for fn, n in zip(FUNCTION_NAMES, sizes, strict=True):
        if n > spec.max_size(fn):
            raise ValueError(f"{fn} size_init {n} exceeds ProgramSpec.max_{fn}_size "
                             f"{spec.max_size(fn)}")
    return sizes


def initial_program(algorithm, spec: ProgramSpec, sizes: Sequence[int] = (0, 0, 0),
                    key: jax.Array | None = None, mutation_config=None,
                    learning_rate: float = DEFAULT_LEARNING_RATE) -> Program:
    """One initial program of the given kind. ``sizes`` = (setup, predict, learn)
    size_init; RANDOM needs ``key`` and ``mutation_config`` (for the allowed ops)."""
    algorithm = as_algorithm(algorithm)
    sizes = _check_sizes(sizes, spec)
    if algorithm == Algorithm.NO_OP:
        return from_lists(spec, **_padded({fn: [] for fn in FUNCTION_NAMES}, sizes))
    if algorithm == Algorithm.RANDOM:
        if key is None or mutation_config is None:
            raise ValueError("RANDOM initial programs need key= and mutation_config=")
        return random_program(key, spec, mutation_config, sizes)
    lists = {
        Algorithm.LINEAR: lambda: linear_lists(learning_rate),
        Algorithm.NEURAL_NET: lambda: neural_net_lists(learning_rate),
        Algorithm.MULTICLASS_NEURAL_NET: lambda: multiclass_neural_net_lists(learning_rate),
        Algorithm.INTEGRATION_TEST_DAMAGED_NEURAL_NET: lambda: _damaged_padded(
            learning_rate, sizes),
    }[algorithm]()
    if algorithm == Algorithm.INTEGRATION_TEST_DAMAGED_NEURAL_NET:
        return from_lists(spec, **lists)
    return from_lists(spec, **_padded(lists, sizes))


def _damaged_padded(learning_rate, sizes):
    # The reference pads the full net to size_init and *then* erases the two inits.
    lists = _padded(neural_net_lists(learning_rate), sizes)
    lists["setup"] = lists["setup"][2:]
    return lists


def initial_population(algorithm, spec: ProgramSpec, population_size: int,
                       sizes: Sequence[int] = (0, 0, 0), key: jax.Array | None = None,
                       mutation_config=None) -> Program:
    """``population_size`` initial programs with a leading population axis."""
    algorithm = as_algorithm(algorithm)
    if algorithm == Algorithm.RANDOM:
        if key is None or mutation_config is None:
            raise ValueError("RANDOM initial programs need key= and mutation_config=")

        sizes = _check_sizes(sizes, spec)
        return _random_population_fn(spec, mutation_config, sizes)(
            jax.random.split(key, population_size))
    one = initial_program(algorithm, spec, sizes)
    return jax.tree.map(lambda x: jax.numpy.broadcast_to(x, (population_size, *x.shape)), one)


@functools.lru_cache(maxsize=32)
def _random_population_fn(spec: ProgramSpec, mutation_config, sizes: tuple):
    """Jitted vmapped RANDOM_ALGORITHM builder, cached so repeated searches (and
    experiments) with the same spec do not recompile it."""
    return jax.jit(jax.vmap(lambda k: random_program(k, spec, mutation_config, sizes)))
