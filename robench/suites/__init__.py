"""Experiment suites: a whole study (models x attacks x scores) described in a TOML file.

A suite is planned into steps (train, attack, matrix, score). Running it skips every finished
step, so an interrupted study resumes where it stopped; an interrupted training run resumes
from its checkpoint. Format (see ``benchmarks/suites/`` for complete examples)::

    [study]
    name = "table4-cpu"
    dataset = "digits"            # default dataset of every model

    [train]                       # defaults for every [[models]] entry
    preset = "quick"
    width = 16

    [[models]]                    # list values expand into a grid (cartesian product)
    arch = ["resnet18", "vgg19"]
    keep = [1.0, 0.5, 0.3]

    [[imports]]                   # models robench did not train (`robench import`): name, from, its options
    name = "tv-resnet18"
    from = "torchvision:resnet18"

    [attack]                      # defaults for every [[attacks]] entry
    n = 500

    [[attacks]]
    source = ["resnet18-seed1"]   # one set per source; `ensemble = [...]` makes one fused source
    method = "pgd"
    eps = "16/255"

    [matrix]
    out = "matrix.csv"            # relative paths land in WORKSPACE/results/ (.csv .json .md .tex)
    plot = "matrix.pdf"           # the heatmap (.png .svg .pdf .eps)

    [[scores]]
    kind = "tradeoff"             # boundary | noise | shuffle | tradeoff | autoattack | folder
    set = "densenet121-seed1-pgd-eps16"
    models = "resnet18*"

    [[scores]]
    kind = "folder"               # accuracy on a test-only folder, classes matched by name
    data_dir = "/data/stylized"   # needed by kind "folder"

    [[compare]]                   # McNemar's exact test of two targets on one set (`robench compare`)
    a = "resnet18-keep0.3-bottom"
    b = "resnet18"
    set = "densenet121-seed1-pgd-eps16"

    [executor]                    # where steps run; `robench run` options of the same names win
    name = "ray"                  # sequential (default) | ray
    gpus_per_train = 0.25         # four trainings share a GPU; also gpus_per_attack, _matrix, _score, _import
    cpus_per_step = 2

Every key is checked when the file is loaded, before anything runs (:func:`check`): the keys a section takes
come from the signature of the function it feeds (``robench.train``, ``robench.attack`` plus every attack
method's parameters, ``robench.matrix`` and each score function), so an unknown key or a value of the wrong
type is a one-line error naming the file, the section and the key.

The package holds one concept a module: :mod:`~robench.suites.schema` (the file format, checked before anything
runs), :mod:`~robench.suites.plan` (the steps as a graph), :mod:`~robench.suites.execute` (running steps, the
Executor interface and the sequential executor), :mod:`~robench.suites.executors` (which executor runs a suite),
:mod:`~robench.suites.ray` (the Ray executor: several GPUs, a cluster; imported only when asked for) and
:mod:`~robench.suites.demo` (the built-in demo study).
"""

from robench.suites.demo import DEMO_SOURCE, demo_plots, demo_suite
from robench.suites.execute import (
    Executor,
    Outcome,
    RunReport,
    Sequential,
    StepReport,
    execute_step,
    log_path,
    run,
    run_step,
    write_result,
)
from robench.suites.executors import EXECUTORS, executor_for
from robench.suites.plan import Step, order, plan, plan_frame
from robench.suites.schema import (
    _RUNNER,
    OUTPUT_KEYS,
    SCORE_KINDS,
    SCORES,
    Section,
    Suite,
    check,
    grid,
    load_suite,
    score_fields,
    sections,
    signature_fields,
    suite_from_dict,
)

__all__ = ["DEMO_SOURCE", "EXECUTORS", "Executor", "OUTPUT_KEYS", "Outcome", "RunReport", "SCORES", "SCORE_KINDS",
           "Section", "Sequential", "Step", "StepReport", "Suite", "_RUNNER", "check", "demo_plots", "demo_suite",
           "execute_step", "executor_for", "grid", "load_suite", "log_path", "order", "plan", "plan_frame", "run",
           "run_step", "score_fields", "sections", "signature_fields", "suite_from_dict", "write_result"]
