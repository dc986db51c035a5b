"""Execute the quickstart notebook at a tiny size (fast subset: CI runs it)."""


def test_quickstart_notebook_runs(tmp_path, run_notebook):
    run_notebook("automl_zero_quickstart.ipynb",
                 {"QUICKSTART_SIZE": "10", "QUICKSTART_STEPS": "30000"}, cwd=tmp_path)
    assert (tmp_path / "quickstart_out" / "fitness.png").exists()
