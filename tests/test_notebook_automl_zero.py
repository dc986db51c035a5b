"""Execute the quickstart notebook at a tiny size (fast subset: CI runs it)."""


def test_quickstart_notebook_runs(tmp_path, run_notebook):
    text, _ = run_notebook("automl_zero_quickstart.ipynb",
                           {"QUICKSTART_SIZE": "10", "QUICKSTART_STEPS": "30000",
                            "ADAPT_GENERATIONS": "1"}, cwd=tmp_path)
    assert (tmp_path / "quickstart_out" / "fitness.png").exists()
    # the adaptation section: a fast_training search scored on held-out tasks, and the
    # detector finding the hand-written learning-rate decay
    assert "adaptation: start (two-layer net, SGD lr 0.01)" in text
    assert "learning_rate_decay ['s3: " in text
