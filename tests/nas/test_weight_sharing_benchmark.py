"""The speed benchmark's two sides compute the same thing (benchmarks/weight_sharing.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import weight_sharing_benchmark as bench  # registered by tests/nas/conftest.py
from flax import nnx

from nas import weight_sharing as ws
from nas.benchmarks import nb201


@pytest.mark.parametrize("kernel", [1, 3])
def test_same_conv_gradient_matches_lax(kernel):
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 3))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 5))

    def loss(conv, x, w):
        return jnp.sum(jnp.sin(conv(x, w)))

    want = jax.grad(lambda x, w: loss(bench._conv, x, w), (0, 1))(x, w)
    got = jax.grad(lambda x, w: loss(bench.same_conv, x, w), (0, 1))(x, w)
    for g, r in zip(got, want, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # builds both supernets (about 10 s of CPU)
def test_jax_and_torch_supernets_have_the_same_weights():
    torch_supernet = pytest.importorskip("torch_supernet")
    config = nb201.NetConfig(channels=4)
    space = bench.supernet_space(config)
    assert space.n_int == len(nb201.EDGES)  # one shared decision per edge, all cells
    supernet = ws.Supernet(space)
    jax_shapes = sorted(tuple(x.shape) for x in jax.tree.leaves(nnx.state(supernet, nnx.Param)))
    net = torch_supernet.Network(**config.kwargs())
    # torch: OIHW convs, (C,) norms, (out, in) linear -> the same sizes as HWIO / (in, out)
    torch_sizes = sorted(int(np.prod(p.shape)) for p in net.weights())
    assert sorted(int(np.prod(s)) for s in jax_shapes) == torch_sizes
    assert tuple(supernet.alpha[...].shape) == tuple(net.alpha.shape) == (6, 5)
    x = np.zeros((2, 16, 16, 1), np.float32)
    sel = ws.mix(space, supernet.alpha[...])
    import torch  # noqa: PLC0415 - optional, present when torch_supernet imported

    out_t = net(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    assert supernet(jnp.asarray(x), selection=sel).shape == tuple(out_t.shape) == (2, 10)
