"""Supernets from a space, derive, diagnostics and bad input (nas.weight_sharing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from weight_sharing_cells import MLP, OPS, Cell, Net, Skip, data, edge, template

import nas
from nas import weight_sharing as ws
from nas.weight_sharing.supernet import MixedOp


class Act(nnx.Module):
    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, x):
        return {"relu": nnx.relu, "tanh": jnp.tanh}[self.kind](x)


class Pick(nnx.Module):
    """An input picker: a manyof over these chooses which earlier states feed a node."""

    def __init__(self, i: int):
        self.i = i

    def __call__(self, states):
        return states[self.i]


class Node(nnx.Module):
    def __init__(self, inputs):
        self.inputs = nnx.List(inputs)

    def __call__(self, states):
        return sum(p(states) for p in self.inputs)


class Head(nnx.Module):
    def __init__(self, layer, node, *, rngs):
        self.stem = nnx.Linear(3, 4, rngs=rngs)
        self.layer = layer
        self.node = node

    def __call__(self, x):
        h = self.stem(x)
        return self.node([h, self.layer(h), 2.0 * h])


def linear_space(seed=0):
    rngs = nnx.Rngs(seed)
    layer = nas.oneof([nas.deferred(nnx.Linear)(4, 4, rngs=rngs),
                       nas.deferred(nnx.Linear)(4, 4, rngs=rngs), jnp.tanh], name="layer")
    node = nas.deferred(Node)(nas.manyof(2, [nas.deferred(Pick)(i) for i in range(3)],
                                         sorted=True, name="inputs"))
    return nas.Space(nas.deferred(Head)(layer, node, rngs=rngs))


# ------------------------------------------------------------------------ supernet
def test_params_hold_every_candidate_once_and_alpha_is_the_only_arch_param():
    sp = nas.Space(template(channels=4, num_cells=2))  # 12 edges
    sn = ws.Supernet(sp)
    arch = nnx.state(sn, nas.ArchParam)
    assert [tuple(x.shape) for x in jax.tree.leaves(arch)] == [(12, 5)]
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(sn, nnx.Param)))
    conv1, conv3 = 4 * 4 + 4, 9 * 4 * 4 + 4
    stem, head = 9 * 1 * 4 + 4, 4 * 4 + 4
    assert n_params == 12 * (conv1 + conv3) + stem + head  # one copy per candidate
    mixed = [m for _, m in nnx.iter_graph(sn) if isinstance(m, MixedOp)]
    assert len(mixed) == 12 and {m.name for m in mixed} == set(sp.names)
    # masks read from the candidates: none / skip / pool have no params; none is named
    assert sn.param_free[0] == (True, True, False, False, True)
    assert sn.is_none[0] == (True, False, False, False, False)


def test_shared_decision_is_one_slot_read_by_every_place():
    rngs = nnx.Rngs(0)
    cells = [nas.deferred(Cell)([edge(4, rngs, name=f"e{k}") for k in range(6)])
             for _ in range(2)]  # one genotype, two cells
    sp = nas.Space(nas.deferred(Net)(cells, 4, rngs=rngs))
    assert sp.n_int == 6
    sn = ws.Supernet(sp)
    mixed = [m for _, m in nnx.iter_graph(sn) if isinstance(m, MixedOp)]
    assert len(mixed) == 12 and sorted(m.slot for m in mixed) == sorted(list(range(6)) * 2)
    a, b = sn.net.cells[0].edges[2].candidates[3], sn.net.cells[1].edges[2].candidates[3]
    assert a is not b  # each place keeps its own weights
    model = sp.materialize(ws.derive(sn, jnp.asarray(np.eye(6, 5, 1) * 3)))
    names = [[type(e).__name__ for e in c.edges] for c in model.cells]
    # rows 0-3 pick ops 1-4; rows 4-5 are flat: the first op that is not none (skip)
    assert names[0] == names[1] == ["Skip", "ReLUConv", "ReLUConv", "AvgPool", "Skip", "Skip"]
    # building the supernet does not advance the template's Rngs (like materialize)
    before = rngs.params.count[...]
    ws.Supernet(sp)
    assert rngs.params.count[...] == before
    same = ws.Supernet(sp)
    np.testing.assert_array_equal(same.net.stem.kernel[...], sn.net.stem.kernel[...])


def test_mix_and_hard_selections_match_numpy_reference():
    sp = linear_space()
    sn = ws.Supernet(sp)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    stem = (np.asarray(sn.net.stem.kernel[...]), np.asarray(sn.net.stem.bias[...]))
    h = x @ stem[0] + stem[1]
    cands = sn.net.layer.candidates
    outs = [h @ np.asarray(c.kernel[...]) + np.asarray(c.bias[...]) for c in cands[:2]]
    outs.append(np.tanh(h))
    states = [h, None, 2 * h]
    alpha = np.random.default_rng(1).normal(size=(sp.n_int, sp.max_choices)).astype(np.float32)
    w = np.exp(alpha) / np.exp(alpha).sum(1, keepdims=True)  # every slot has 3 choices
    layer = sum(w[0, j] * outs[j] for j in range(3))
    states[1] = layer
    picked = [sum(w[s, j] * states[j] for j in range(3)) for s in (1, 2)]
    got = sn(jnp.asarray(x), selection=ws.mix(sp, jnp.asarray(alpha)))
    np.testing.assert_allclose(got, picked[0] + picked[1], rtol=1e-5, atol=1e-5)
    dna = nas.DNA(jnp.array([1, 0, 2], jnp.int32), jnp.zeros((0,), jnp.float32))
    got = sn(jnp.asarray(x), selection=ws.from_dna(sp, dna))
    np.testing.assert_allclose(got, h + 2 * h, rtol=1e-5, atol=1e-5)
    dna = nas.DNA(jnp.array([1, 1, 2], jnp.int32), jnp.zeros((0,), jnp.float32))
    got = sn(jnp.asarray(x), selection=ws.from_dna(sp, dna))
    np.testing.assert_allclose(got, outs[1] + 2 * h, rtol=1e-5, atol=1e-5)


def test_hard_selection_computes_only_the_chosen_candidate():
    class Poison(nnx.Module):  # NaN if it ever contributes
        def __call__(self, x):
            return x * jnp.nan

    sp = nas.Space(nas.deferred(Head)(
        nas.oneof([nas.deferred(Poison)(), jnp.tanh], name="layer"),
        nas.deferred(Node)([nas.deferred(Pick)(1)]), rngs=nnx.Rngs(0)))
    sn = ws.Supernet(sp)
    x = jnp.ones((2, 3))
    dna = nas.DNA(jnp.array([1], jnp.int32), jnp.zeros((0,), jnp.float32))
    assert np.isfinite(sn(x, selection=ws.from_dna(sp, dna))).all()
    sel = ws.gumbel(sp, jnp.array([[-50.0, 50.0]]), jax.random.key(0), 1.0)
    assert int(sel.index[0]) == 1 and np.isfinite(sn(x, selection=sel)).all()
    assert np.isnan(sn(x, selection=ws.mix(sp, jnp.array([[-50.0, 50.0]])))).all()


def test_constant_choice_in_a_constructor_becomes_one_candidate_per_value():
    rngs = nnx.Rngs(0)
    sp = nas.Space(nas.deferred(Head)(nas.deferred(Act)(nas.oneof(["relu", "tanh"], name="act")),
                                      nas.deferred(Node)([nas.deferred(Pick)(1)]), rngs=rngs))
    sn = ws.Supernet(sp)
    x = jnp.linspace(-1, 1, 6).reshape(2, 3)
    h = sn.net.stem(x)
    dna = nas.DNA(jnp.array([1], jnp.int32), jnp.zeros((0,), jnp.float32))
    np.testing.assert_allclose(sn(x, selection=ws.from_dna(sp, dna)), jnp.tanh(h), rtol=1e-6)


def test_gumbel_selection_is_one_hot_with_the_soft_sample_gradient():
    sp = nas.Space([nas.oneof([jnp.sin, jnp.cos, jnp.tanh])])
    alpha = jnp.array([[0.3, -0.2, 0.1]])
    key = jax.random.key(3)
    sel = ws.gumbel(sp, alpha, key, 0.5)
    np.testing.assert_allclose(sel.weights, jax.nn.one_hot(sel.index, 3), atol=1e-6)
    f = lambda a: ws.gumbel(sp, a, key, 0.5).weights[0, 2]  # noqa: E731
    g = jax.random.gumbel(key, alpha.shape)
    soft = lambda a: jax.nn.softmax((a + g) / 0.5)[0, 2]  # noqa: E731
    np.testing.assert_allclose(jax.grad(f)(alpha), jax.grad(soft)(alpha), rtol=1e-5, atol=1e-7)


# -------------------------------------------------------------------------- derive
def test_derive_excludes_none_takes_distinct_top_inputs_and_materializes_plain_model():
    sp = nas.Space(template(channels=4))
    sn = ws.Supernet(sp)
    alpha = np.zeros((6, 5), np.float32)
    alpha[:, 0] = 9.0  # none is the largest everywhere ...
    alpha[np.arange(6), [1, 2, 3, 4, 1, 2]] = 5.0  # ... but excluded
    dna = ws.derive(sn, jnp.asarray(alpha))
    assert list(np.asarray(dna.ints)) == [1, 2, 3, 4, 1, 2]
    assert list(np.asarray(ws.derive(sn, jnp.asarray(alpha), exclude_none=False).ints)) == [0] * 6
    model = sp.materialize(dna)
    assert isinstance(model, Net)
    assert not any(isinstance(m, MixedOp) for _, m in nnx.iter_graph(model))
    assert [type(e).__name__ for e in model.cells[0].edges] == [
        "Skip", "ReLUConv", "ReLUConv", "AvgPool", "Skip", "ReLUConv"]
    assert model(jnp.ones((1, 6, 6, 1))).shape == (1, 4)
    # manyof over input pickers: top-2 distinct inputs, sorted
    sp2 = linear_space()
    a2 = jnp.array([[0.0, 1.0, 0.5], [0.1, 2.0, 3.0], [0.0, 0.5, 2.5]])
    assert list(np.asarray(ws.derive(ws.Supernet(sp2), a2).ints)) == [1, 1, 2]


# --------------------------------------------------------------------- diagnostics
def test_entropy_and_param_free_share_hand_worked():
    sp = nas.Space(template(channels=4))
    sn = ws.Supernet(sp)
    np.testing.assert_allclose(ws.entropy(sp, jnp.zeros((6, 5))), np.log(5), rtol=1e-6)
    assert float(ws.entropy(sp, jax.nn.one_hot(jnp.arange(6) % 5, 5) * 1e4)) < 1e-3
    ints = jnp.array([1, 2, 4, 3, 0, 1], jnp.int32)  # skip conv pool conv none skip
    share = ws.param_free_share(sp, ints, np.array(sn.param_free), np.array(sn.op_slot))
    assert float(share) == pytest.approx(4 / 6)


def test_power_iteration_matches_numpy_eigenvalue():
    a = np.random.default_rng(0).normal(size=(6, 6))
    h = a @ a.T - 3 * np.eye(6)
    f = lambda x: 0.5 * x.reshape(-1) @ jnp.asarray(h, jnp.float32) @ x.reshape(-1)  # noqa: E731
    lam = ws.dominant_eigenvalue(f, jnp.zeros((2, 3)), jax.random.key(0), num_iters=200)
    ev = np.linalg.eigvalsh(h)
    assert float(lam) == pytest.approx(ev[np.argmax(np.abs(ev))], rel=1e-3)


# ----------------------------------------------------------------------- bad input
def test_nothing_to_share_is_rejected_naming_the_decision():
    with pytest.raises(ValueError, match="'lr'.*floatv"):
        ws.Supernet(nas.Space({"lr": nas.floatv(0.1, 1.0, name="lr")}))
    with pytest.raises(ValueError, match="'width'.*constants outside"):
        ws.Supernet(nas.Space({"width": nas.oneof([8, 16], name="width")}))
    with pytest.raises(ValueError, match="nothing to share.*'act'"):
        ws.Supernet(nas.Space(nas.deferred(Act)(nas.oneof(["relu", "tanh"], name="act"))))
    with pytest.raises(ValueError, match="'picks'.*manyof among constants"):
        ws.Supernet(nas.Space(nas.deferred(Node)(nas.manyof(2, [0, 1, 2], name="picks"))))


class Scaled(nnx.Module):
    """A layer whose constructor reads a weight's value in Python: it cannot be traced."""

    def __init__(self, d, *, rngs):
        self.lin = nnx.Linear(d, d, rngs=rngs)
        self.gain = 1.0 / float(jnp.abs(self.lin.kernel[...]).sum())

    def __call__(self, x):
        return self.gain * self.lin(x)


def test_build_is_one_compiled_program_with_the_eager_weights_or_eager_when_untraceable():
    from nas.weight_sharing import supernet as supernet_mod  # noqa: PLC0415

    sp = nas.Space(template())
    supernet_mod._COMPILED_BUILDS.clear()
    traced = ws.Supernet(sp)
    assert len(supernet_mod._COMPILED_BUILDS) == 1  # the build was one compiled program
    assert all(isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
               for x in jax.tree.leaves(nnx.state(traced)))
    eager = supernet_mod._Builder(sp, None, True).build(sp._tree, False)  # op by op
    for a, b in zip(jax.tree.leaves(nnx.state(traced.net)), jax.tree.leaves(nnx.state(eager)),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # the same template again reuses the compiled build; another seed is another program
    again, reseeded = ws.Supernet(sp), ws.Supernet(sp, seed=1)
    assert len(supernet_mod._COMPILED_BUILDS) == 2
    for a, b, c in zip(jax.tree.leaves(nnx.state(traced, nnx.Param)),
                       jax.tree.leaves(nnx.state(again, nnx.Param)),
                       jax.tree.leaves(nnx.state(reseeded, nnx.Param)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.size == 1 or not np.array_equal(np.asarray(a), np.asarray(c)) or \
            np.all(np.asarray(a) == np.asarray(a).flat[0])  # constant inits (bias, scale)
    # a constructor that needs concrete values is built eagerly instead
    rngs = nnx.Rngs(0)
    layers = [nas.oneof([nas.deferred(Scaled)(4, rngs=rngs), nas.deferred(Skip)()],
                        name="layer")]
    sn = ws.Supernet(nas.Space(nas.deferred(MLP)(layers, 4, rngs=rngs)))
    scaled = sn.net.layers[0].candidates[0]
    assert isinstance(scaled.gain, float)
    assert scaled.gain == pytest.approx(1.0 / float(jnp.abs(scaled.lin.kernel[...]).sum()))
    out = sn(jnp.ones((2, 3)), selection=ws.mix(sn.space, sn.alpha[...]))
    assert out.shape == (2, 2) and bool(jnp.all(jnp.isfinite(out)))


def test_candidates_with_different_output_shapes_are_rejected_naming_the_decision():
    rngs = nnx.Rngs(0)
    layer = nas.oneof([nas.deferred(nnx.Linear)(4, 4, rngs=rngs),
                       nas.deferred(nnx.Linear)(4, 8, rngs=rngs)], name="width")
    sp = nas.Space(nas.deferred(Head)(layer, nas.deferred(Node)([nas.deferred(Pick)(1)]),
                                      rngs=rngs))
    sn = ws.Supernet(sp)
    for sel in (ws.mix(sp, sn.alpha[...]),
                ws.from_dna(sp, nas.DNA(jnp.array([0]), jnp.zeros((0,))))):
        with pytest.raises(ValueError, match="'width'.*disagree in shape"):
            sn(jnp.ones((2, 3)), selection=sel)
    with pytest.raises(ValueError, match="'width'.*without an architecture"):
        sn.net(jnp.ones((2, 3)))


def test_dna_or_alpha_from_another_space_is_rejected():
    sp = nas.Space(template(channels=4))
    sn = ws.Supernet(sp)
    fns, (params, arch, rest) = ws.SupernetFns.create(sn)
    x, y = data(4)
    other = nas.Space(nas.oneof([1, 2, 3]))
    with pytest.raises(ValueError, match=r"shape \(num_dnas, 6\)"):
        ws.evaluate(fns, params, arch, rest, other.sample_batch(jax.random.key(0), 2), (x, y))
    bad = nas.DNA(jnp.full((1, 6), 7, jnp.int32), jnp.zeros((1, 0)))
    with pytest.raises(ValueError, match="value 7 for decision '0/0/0/0'"):
        ws.evaluate(fns, params, arch, rest, bad, (x, y))
    with pytest.raises(ValueError, match=r"alpha must have shape \(6, 5\)"):
        ws.derive(sn, jnp.zeros((3, 5)))


def test_oneshot_batched_evaluation_matches_one_at_a_time():
    sp = nas.Space(template(channels=4))
    sn = ws.Supernet(sp)
    fns, (params, arch, rest) = ws.SupernetFns.create(sn)
    x, y = data(16)
    dnas = sp.sample_batch(jax.random.key(0), 5)
    acc, loss = ws.evaluate(fns, params, arch, rest, dnas, (x, y), chunk=2)
    for i in range(5):
        d = jax.tree.map(lambda a, i=i: a[i], dnas)
        logits = sp.materialize(d)  # different weights; only checks it builds
        assert logits is not None
        out = sn(x, selection=ws.from_dna(sp, d))
        ref = ws.cross_entropy(out, y)
        np.testing.assert_allclose(loss[i], ref, rtol=1e-5)
        np.testing.assert_allclose(acc[i], ws.accuracy(out, y), rtol=1e-6)
    assert set(OPS) == {"none", "skip", "conv1x1", "conv3x3", "avgpool3x3"}


def test_plot_draws_the_three_diagnostics(tmp_path):
    hist = [{"step": i, "param_free_share": i / 10, "entropy": 1.6 - i / 10,
             **({"hessian_eigenvalue": 0.1 * i} if i % 5 == 0 else {})} for i in range(10)]
    fig = ws.plot(hist, str(tmp_path / "c.png"), title="toy")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert [ax.get_title() for ax in fig.axes] == [
        "param_free_share", "entropy", "hessian_eigenvalue"]
    assert len(fig.axes[2].lines[0].get_xdata()) == 2
