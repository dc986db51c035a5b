"""Execute notebooks/weight_sharing.ipynb at a tiny size (DARTS and GDAS on digits)."""


def test_weight_sharing_notebook_runs_tiny(run_notebook):
    outputs, images = run_notebook("weight_sharing.ipynb", {"NAS_WS_TINY": "1"}, timeout=300)
    assert "DARTS derived {'block0': '" in outputs
    assert "GDAS derived {'block0': '" in outputs
    for name in ("DARTS", "GDAS", "hand-designed"):
        assert f"{name}: CNN(blocks=[" in outputs
    assert outputs.count("test accuracy") == 3
    assert images == 2  # the architecture weights and the collapse diagnostics
