"""Continual learning with condensed (or selected) exemplar memories.

    from tfcondense import continual, data
    source = data.load_source("fashion_mnist")
    config = continual.ContinualConfig(memory_ipc=10, strategy="idc", protocol="cpu",
                                       exemplars=continual.ExemplarConfig(steps=50))
    learner = continual.ClassIncrementalLearner(source, config, steps=5,
                                                run_dir="runs/cl/idc")
    result = learner.run()          # resumable: a new learner continues the run_dir
    result.accuracies               # test accuracy on all seen classes after each step

Task-incremental over a dataset sequence (one head per task):

    tasks = continual.task_sequence(["digits", "fashion_mnist"])
    continual.TaskIncrementalLearner(tasks, config).run()

Exemplar strategies (`EXEMPLARS`): random, herding, kcenter (selection) and dm, idc_i,
idc (condensation), all under one budget of `memory_ipc` stored images per class.
"""
from __future__ import annotations

from tfcondense.continual.learner import (DIGIT_TASKS, PROTOCOLS, TRAIN_ON,
                                          ClassIncrementalLearner, ContinualConfig,
                                          ContinualResult, IncrementalTrainer,
                                          TaskIncrementalLearner, classification_loss,
                                          compare, distillation_loss, format_table,
                                          get_protocol,
                                          grow_classifier, harmonize, make_class_order,
                                          plot_accuracy, split_classes, split_source,
                                          summarize, task_sequence)
from tfcondense.continual.memory import (CONDENSE_STRATEGIES, EXEMPLARS,
                                         SELECT_STRATEGIES, ExemplarConfig, Exemplars,
                                         build_exemplars, strategy_names)

__all__ = [
    "CONDENSE_STRATEGIES", "DIGIT_TASKS", "EXEMPLARS", "PROTOCOLS", "SELECT_STRATEGIES",
    "TRAIN_ON", "ClassIncrementalLearner", "ContinualConfig", "ContinualResult",
    "ExemplarConfig", "Exemplars", "IncrementalTrainer", "TaskIncrementalLearner",
    "build_exemplars", "classification_loss", "compare", "distillation_loss",
    "format_table", "get_protocol", "grow_classifier", "harmonize", "make_class_order",
    "plot_accuracy", "split_classes", "split_source", "strategy_names", "summarize",
    "task_sequence",
]
