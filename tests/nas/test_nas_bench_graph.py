"""NAS-Bench-Graph space and objective (skipped when the package is missing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nas import DNA, RegularizedEvolution, run_vectorized
from nas.benchmarks import nas_bench_graph as nbg

pytest.importorskip("nas_bench_graph")


@pytest.fixture(scope="module")
def cora():
    return nbg.load("cora")


def dna_of(link, ops, table_ops=nbg.OPS):
    ints = [nbg.LINKS.index(tuple(link))] + [table_ops.index(o) for o in ops]
    return DNA(jnp.array(ints, jnp.int32), jnp.zeros((0,), jnp.float32))


def test_unique_architecture_counts_match_the_paper(cora):
    assert cora.num_unique == 26206  # the paper's count
    assert nbg.space("cora").size() == 9 * 9 ** 4
    assert nbg.load("proteins").num_unique == 2021  # every entry of the proteins table


def test_lookup_matches_the_raw_table(cora):
    import nas_bench_graph as pkg

    raw = pkg.light_read("cora")
    for arch in pkg.architecture.anchors:
        key = arch.valid_hash()
        dna = dna_of(arch.link, arch.ops)
        assert float(cora.lookup("valid_perf", dna)) == pytest.approx(raw[key]["valid_perf"])
        assert float(cora.lookup("perf", dna)) == pytest.approx(raw[key]["perf"])


def test_isomorphic_wirings_share_results(cora):
    # two parallel layers feeding the output are interchangeable
    a = dna_of((0, 0, 1, 2), ["gcn", "gat", "sage", "gin"])
    b = dna_of((0, 0, 1, 2), ["gat", "gcn", "gin", "sage"])
    assert float(cora.lookup("perf", a)) == float(cora.lookup("perf", b))
    all_skip = dna_of((0, 1, 2, 3), ["skip"] * 4)
    assert np.isnan(float(cora.lookup("perf", all_skip)))
    assert float(cora.objective()(all_skip)) == 0.0


def test_evolution_finds_a_top_one_percent_architecture(cora):
    valid = cora.metrics["valid_perf"]
    top1 = np.nanpercentile(valid, 99)
    algo = RegularizedEvolution(nbg.space("cora"), 50, 10, batch_size=10)
    res = run_vectorized(algo, cora.objective(), jax.random.key(0), 50)
    assert float(res.state.best.reward) >= top1


def test_bad_dataset_is_rejected():
    with pytest.raises(ValueError, match="dataset must be one of"):
        nbg.load("mnist")
