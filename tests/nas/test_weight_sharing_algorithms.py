"""DARTS (1st/2nd order), GDAS, ENAS, random search with weight sharing, the driver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from weight_sharing_cells import MLP, Dense, Net, Skip, Zero, data, template

import nas
from nas import weight_sharing as ws
from nas.weight_sharing.supernet import MixedOp


def mlp_space(d=4, seed=0):
    rngs = nnx.Rngs(seed)
    layers = [nas.oneof([nas.deferred(Zero)(), nas.deferred(Skip)(),
                         nas.deferred(Dense)(d, rngs=rngs)]) for _ in range(2)]
    return nas.Space(nas.deferred(MLP)(layers, d, rngs=rngs))


def mlp_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray((x[:, 0] * x[:, 1] > 0).astype(np.int32))


TRAIN, VALID = mlp_data(32, 0), mlp_data(32, 1)


# -------------------------------------------------------------- DARTS second order
def test_darts_second_order_exact_and_finite_difference_hypergradients_agree():
    sp = mlp_space()
    sn = ws.Supernet(sp, alpha_scale=0.5)
    exact = ws.Darts(sn, num_steps=10, order=2, hypergradient="exact",
                     weights=ws.WeightOptim(learning_rate=0.5))
    fd = ws.Darts(sn, num_steps=10, order=2, hypergradient="finite_difference",
                  weights=ws.WeightOptim(learning_rate=0.5))
    first = ws.Darts(sn, num_steps=10, order=1)
    state = exact.init()
    g_exact = np.asarray(jax.jit(exact.arch_gradient)(state, TRAIN, VALID)[0]["alpha"][...])
    g_fd = np.asarray(jax.jit(fd.arch_gradient)(state, TRAIN, VALID)[0]["alpha"][...])
    g_first = np.asarray(jax.jit(first.arch_gradient)(state, TRAIN, VALID)[0]["alpha"][...])
    # independent reference: central differences of the unrolled objective in alpha
    fns = exact.fns
    xi = float(exact.w_lr(0))

    @jax.jit
    def unrolled(alpha):
        def train_loss(p):
            return fns.loss(p, state.arch, state.rest, TRAIN, ws.mix(sp, alpha))[0]
        g = jax.grad(train_loss)(state.params)
        w2 = jax.tree.map(lambda w, d: w - xi * (d + 3e-4 * w), state.params, g)
        return fns.loss(w2, state.arch, state.rest, VALID, ws.mix(sp, alpha))[0]

    a0 = np.asarray(fns.alpha(state.arch), np.float64)
    ref = np.zeros_like(a0)
    h = 1e-3
    for idx in np.ndindex(a0.shape):
        e = np.zeros_like(a0)
        e[idx] = h
        ref[idx] = (float(unrolled(jnp.asarray(a0 + e, jnp.float32)))
                    - float(unrolled(jnp.asarray(a0 - e, jnp.float32)))) / (2 * h)
    scale = np.linalg.norm(g_exact)
    # stated tolerances: exact vs finite difference within 2% (relative L2), the exact
    # hypergradient vs numerical differentiation within 5% (float32 loss differences)
    assert np.linalg.norm(g_exact - g_fd) / scale < 0.02
    assert np.linalg.norm(g_exact - ref) / scale < 0.05
    # the second-order term matters here, so the agreement is not vacuous
    assert np.linalg.norm(g_exact - g_first) / scale > 0.05


# ------------------------------------------------------------- no recompilation
@pytest.mark.parametrize("make", [
    lambda sn: ws.Darts(sn, num_steps=5),
    lambda sn: ws.Darts(sn, num_steps=5, order=2),
    lambda sn: ws.Darts(sn, num_steps=5, order=2, split_step=False),
    lambda sn: ws.Gdas(sn, num_steps=5),
    lambda sn: ws.Enas(sn, num_steps=5, num_samples=2),
    lambda sn: ws.RandomSearchWS(sn, num_steps=5),
], ids=["darts1", "darts2", "darts2_one_program", "gdas", "enas", "rsws"])
def test_steps_compile_once_and_keep_dtypes(make, compile_count):
    algo = make(ws.Supernet(mlp_space()))
    state = algo.init()
    kinds = jax.tree.map(lambda a: (a.shape, a.dtype), state)
    stats0 = jax.tree.leaves(state.rest)
    for i in range(3):
        with compile_count() as compiled:
            state, metrics = algo.step(state, mlp_data(32, i), mlp_data(32, 10 + i),
                                       jax.random.key(i))
        assert bool(metrics["finite"])
        if i > 0:
            assert compiled.count == 0, f"step {i + 1} compiled again"
    assert jax.tree.map(lambda a: (a.shape, a.dtype), state) == kinds
    assert int(state.step) == 3
    # batch statistics of the candidates that ran are carried in the state
    assert any(float(jnp.abs(a - b).max()) > 0 for a, b in
               zip(stats0, jax.tree.leaves(state.rest), strict=True))


def test_darts_learns_and_logs_collapse_diagnostics():
    sp = mlp_space()
    algo = ws.Darts(ws.Supernet(sp), num_steps=60, arch=ws.ArchOptim(learning_rate=3e-2))
    state, hist = ws.run(algo, lambda i: (TRAIN, VALID), 60, key=jax.random.key(0),
                         log_every=10, hessian_every=20)
    assert hist[-1]["valid_loss"] < hist[0]["valid_loss"]
    assert hist[-1]["entropy"] < hist[0]["entropy"] <= np.log(3) + 1e-6
    assert {"param_free_share", "entropy"} <= set(hist[-1])
    eig = [h["hessian_eigenvalue"] for h in hist if "hessian_eigenvalue" in h]
    assert len(eig) == 3 and all(np.isfinite(eig))
    # the power iteration agrees with the explicit Hessian's dominant eigenvalue
    fns = algo.fns

    def loss_of_alpha(alpha):
        return fns.loss(state.params, state.arch, state.rest, VALID, ws.mix(sp, alpha))[0]

    hess = np.asarray(jax.jit(jax.hessian(loss_of_alpha))(fns.alpha(state.arch))).reshape(6, 6)
    ev = np.linalg.eigvalsh((hess + hess.T) / 2)
    lam = float(algo.hessian_eigenvalue(state, VALID, jax.random.key(1)))
    assert lam == pytest.approx(ev[np.argmax(np.abs(ev))], rel=1e-2, abs=1e-5)
    assert sp.materialize(algo.derive(state)) is not None


def test_gdas_temperature_schedule_and_single_path():
    algo = ws.Gdas(ws.Supernet(mlp_space()), num_steps=11)
    assert float(algo.tau(0)) == pytest.approx(10.0)
    assert float(algo.tau(5)) == pytest.approx(5.05)
    assert float(algo.tau(10)) == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="tau_min"):
        ws.Gdas(ws.Supernet(mlp_space()), tau_min=0.0)


# ------------------------------------------------------------------- ENAS controller
def test_lstm_controller_is_a_distribution_over_the_space():
    sp = nas.Space({"op": nas.oneof(["a", "b", "c"]),
                    "inputs": nas.manyof(2, ["x", "y", "z"], distinct=True)})
    ctrl = ws.LSTMController(sp, hidden=8, tanh_constant=2.5, temperature=1.0,
                             rngs=nnx.Rngs(0))
    every = sp.enumerate()
    logp = jax.vmap(ctrl.log_prob)(every)
    assert every.ints.shape[0] == 3 * 6
    assert float(jnp.sum(jnp.exp(logp))) == pytest.approx(1.0, abs=1e-5)
    samples = jax.jit(jax.vmap(ctrl.sample))(jax.random.split(jax.random.key(0), 300))
    ints = np.asarray(samples.ints)
    assert (ints[:, 1] != ints[:, 2]).all()  # distinct positions never repeat
    # sample frequencies follow exp(log_prob)
    freq = np.array([np.mean((ints == np.asarray(r)).all(1)) for r in every.ints])
    assert np.abs(freq - np.exp(np.asarray(logp))).max() < 0.08


def test_enas_accepts_arch_distribution_and_rejects_other_controllers():
    sp = mlp_space()
    algo = ws.Enas(ws.Supernet(sp), num_steps=5, controller=nas.ArchDistribution(sp))
    state, metrics = algo.step(algo.init(), TRAIN, VALID, jax.random.key(0))
    assert bool(metrics["finite"]) and algo.derive(state).ints.shape == (2,)
    dnas, acc = algo.select(state, VALID, jax.random.key(1), num_candidates=6)
    assert dnas.ints.shape == (6, 2) and bool(jnp.all(acc[:-1] >= acc[1:]))
    with pytest.raises(ValueError, match="controller must be"):
        ws.Enas(ws.Supernet(sp), controller=object())


# --------------------------------------------------------------------- NaN guard
def test_nan_step_leaves_state_unchanged_and_resume_is_exact(tmp_path):
    sp = mlp_space()
    algo = ws.Darts(ws.Supernet(sp), num_steps=8)
    state = algo.init()
    bad = (TRAIN[0].at[0, 0].set(jnp.nan), TRAIN[1])
    new, metrics = algo.step(state, bad, VALID, jax.random.key(0))
    assert not bool(metrics["finite"])
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), new, state)

    def batches(i):
        return (bad if i == 5 else TRAIN), VALID

    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="step 5: non-finite.*last checkpoint: step 4"):
        ws.run(algo, batches, 8, key=jax.random.key(0), checkpoint_dir=ckpt,
               checkpoint_every=2)
    # resuming (data fixed) continues from step 4 and ends where an unbroken run ends
    resumed, hist = ws.run(algo, lambda i: (TRAIN, VALID), 8, key=jax.random.key(0),
                           checkpoint_dir=ckpt, checkpoint_every=2)
    straight, _ = ws.run(algo, lambda i: (TRAIN, VALID), 8, key=jax.random.key(0))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), resumed, straight)
    assert [h["step"] for h in hist] == list(range(8))
    skipped, hist = ws.run(algo, batches, 8, key=jax.random.key(0), on_nan="skip")
    assert [h["finite"] for h in hist].count(0.0) == 1


# ------------------------------------------------------------- decoupling claim
@pytest.mark.slow
def test_one_template_unchanged_is_searched_by_five_algorithms():
    tmpl = template(channels=3)
    sp = nas.Space(tmpl)
    train, valid = data(16, seed=0), data(16, seed=1)

    def objective(model):  # no sharing: each materialized child on its own (untrained)
        return float(ws.accuracy(model(valid[0]), valid[1]))

    for algo in (nas.RandomSearch(sp, batch_size=2),
                 nas.RegularizedEvolution(sp, population_size=2, tournament_size=2,
                                          batch_size=2)):
        tuner = nas.search(objective, algo, num_trials=4, seed=0, progress=False)
        assert isinstance(tuner.best.value, Net)
    derived = []
    for make in (lambda sn: ws.Darts(sn, num_steps=3), lambda sn: ws.Gdas(sn, num_steps=3),
                 lambda sn: ws.Enas(sn, num_steps=3)):
        algo = make(ws.Supernet(sp))
        state, hist = ws.run(algo, lambda i: (train, valid), 3, key=jax.random.key(0))
        assert all(h["finite"] for h in hist)
        derived.append(algo.derive(state))
    rs = ws.RandomSearchWS(ws.Supernet(sp), num_steps=3)
    state, _ = ws.run(rs, lambda i: (train, valid), 3, key=jax.random.key(0))
    dnas, _ = rs.select(state, valid, jax.random.key(1), num_candidates=4)
    derived.append(jax.tree.map(lambda a: a[0], dnas))
    for dna in derived:
        model = sp.materialize(dna)
        assert isinstance(model, Net)
        assert not any(isinstance(m, MixedOp) for _, m in nnx.iter_graph(model))
        assert model(valid[0]).shape == (16, 4)
    # the derived DNA feeds the no-sharing algorithms too
    evo = nas.RegularizedEvolution(sp, population_size=2, tournament_size=2, batch_size=2)
    pair = jax.tree.map(lambda a, b: jnp.stack([a, b]), derived[0], derived[1])
    evo.tell(evo.init(jax.random.key(0)), pair, jnp.array([0.5, 0.4]))


@pytest.mark.parametrize("hypergradient", ["exact", "finite_difference"])
def test_darts_second_order_pieces_equal_one_program(hypergradient):
    """The second-order step runs as separately jitted pieces (a faster first compile);
    three steps give the states of the same computation jitted as one program."""
    algo = ws.Darts(ws.Supernet(mlp_space(), alpha_scale=0.5), num_steps=5, order=2,
                    hypergradient=hypergradient, weights=ws.WeightOptim(learning_rate=0.5))
    one_program = jax.jit(algo._step_impl)
    a = b = algo.init()
    for i in range(3):
        batches = (mlp_data(32, i), mlp_data(32, 10 + i), jax.random.key(i))
        a, ma = algo.step(a, *batches)
        b, mb = one_program(b, *batches)
        assert bool(ma["finite"]) and bool(mb["finite"])
        np.testing.assert_allclose(ma["valid_loss"], mb["valid_loss"], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(algo.fns.alpha(a.arch) - algo.fns.alpha(algo.init().arch)).max()) > 0
