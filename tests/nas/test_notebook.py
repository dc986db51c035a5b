"""Execute notebooks/nas_quickstart.ipynb at a tiny size."""


def test_quickstart_notebook_runs_tiny(run_notebook):
    outputs, _ = run_notebook("nas_quickstart.ipynb", {"NAS_QUICKSTART_TINY": "1"}, timeout=300)
    assert "best validation accuracy" in outputs
    assert "best toy reward" in outputs
