"""Execute notebooks/weight_sharing.ipynb at a tiny size (DARTS and GDAS on digits)."""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "weight_sharing.ipynb"


def test_weight_sharing_notebook_runs_tiny(monkeypatch):
    monkeypatch.setenv("NAS_WS_TINY", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    env = dict(os.environ)
    root = str(NOTEBOOK.parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    client.execute(env=env)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert "DARTS derived {'block0': '" in outputs
    assert "GDAS derived {'block0': '" in outputs
    for name in ("DARTS", "GDAS", "hand-designed"):
        assert f"{name}: CNN(blocks=[" in outputs
    assert outputs.count("test accuracy") == 3
    assert images == 2  # the architecture weights and the collapse diagnostics
