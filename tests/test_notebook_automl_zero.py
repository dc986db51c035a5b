"""Execute the quickstart notebook at a tiny size (fast subset: CI runs it)."""

import os

import pytest


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = os.path.join(os.path.dirname(__file__), "..", "notebooks",
                        "automl_zero_quickstart.ipynb")
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("QUICKSTART_SIZE", "10")
    monkeypatch.setenv("QUICKSTART_STEPS", "30000")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    nbclient.NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    assert (tmp_path / "quickstart_out" / "fitness.png").exists()
