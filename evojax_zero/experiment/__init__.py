"""Layer 5: experiments. Configs (:mod:`.config`), the reference's presets and sweep files
(:mod:`.presets`), the experiment protocol with checkpoints and outputs (:mod:`.runner`,
:mod:`.checkpoint`, :mod:`.plots`) and the command line (:mod:`.cli`).

Three lines::

    from evojax_zero import experiment
    result = experiment.run(experiment.preset("demo", population_size=100), seed=0)
    print(result.best_text)
"""

from evojax_zero.experiment.config import (
    DIGITS_HELD_OUT,
    TASK_KINDS,
    ExperimentConfig,
    TaskSpec,
    check_run,
)
from evojax_zero.experiment.overrides import SCHEMA, ConfigError
from evojax_zero.experiment.plots import plot_history
from evojax_zero.experiment.presets import DEMO_OPS, OVERRIDES, PRESETS, load_config, preset
from evojax_zero.experiment.runner import Result, RunInterrupted, evaluate, run

__all__ = ["DIGITS_HELD_OUT", "TASK_KINDS", "ExperimentConfig", "TaskSpec", "plot_history",
           "DEMO_OPS", "OVERRIDES", "PRESETS", "load_config", "preset", "Result", "evaluate",
           "run", "RunInterrupted", "ConfigError", "SCHEMA", "check_run"]
