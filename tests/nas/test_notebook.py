"""Execute notebooks/nas_quickstart.ipynb at a tiny size."""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "nas_quickstart.ipynb"


def test_quickstart_notebook_runs_tiny(monkeypatch):
    monkeypatch.setenv("NAS_QUICKSTART_TINY", "1")
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
    assert "best validation accuracy" in outputs
    assert "best toy reward" in outputs
