# Copyright (c) finers_mm contributors. All rights reserved.
"""finers_mm registries.

Every registry here is a child of mmdet's registry of the same kind, so a config built in the
``finers_mm`` scope finds finers_mm components first and stock mmdet (and, through mmdet, mmengine)
components by the same type names. Use in a config::

    default_scope = 'finers_mm'
    custom_imports = dict(imports=['finers_mm'], allow_failed_imports=False)

``locations`` lists the modules imported on first use of a registry. The mmdet modules are listed too:
a registry only imports its own locations, and a ``finers_mm``-scoped config that names, say,
``RetinaNet`` needs ``mmdet.models`` imported before the lookup walks up to mmdet's registry.

``REWARDS`` is new: it holds the GRPO reward terms (see ``finers_mm.rl``).
"""
from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOG_PROCESSORS as MMDET_LOG_PROCESSORS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import RUNNER_CONSTRUCTORS as MMDET_RUNNER_CONSTRUCTORS
from mmdet.registry import RUNNERS as MMDET_RUNNERS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISBACKENDS as MMDET_VISBACKENDS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmdet.registry import WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import Registry

RUNNERS = Registry('runner', parent=MMDET_RUNNERS, locations=['finers_mm.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMDET_RUNNER_CONSTRUCTORS, locations=['finers_mm.engine'])
LOOPS = Registry('loop', parent=MMDET_LOOPS, locations=['finers_mm.engine'])
# FlexibleRunner's strategies (mmdet has no registry of its own for them)
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, locations=['finers_mm.engine'])
HOOKS = Registry(
    'hook', parent=MMDET_HOOKS, locations=['finers_mm.engine', 'finers_mm.rl', 'mmdet.engine.hooks'])

DATASETS = Registry(
    'dataset', parent=MMDET_DATASETS, locations=['finers_mm.datasets', 'mmdet.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMDET_DATA_SAMPLERS,
    locations=['finers_mm.datasets', 'mmdet.datasets.samplers'])
TRANSFORMS = Registry(
    'transform', parent=MMDET_TRANSFORMS,
    locations=['finers_mm.datasets.transforms', 'mmdet.datasets.transforms'])

MODELS = Registry('model', parent=MMDET_MODELS, locations=['finers_mm.models', 'mmdet.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMDET_MODEL_WRAPPERS, locations=['finers_mm.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMDET_WEIGHT_INITIALIZERS, locations=['finers_mm.models'])
TASK_UTILS = Registry(
    'task util', parent=MMDET_TASK_UTILS, locations=['finers_mm.models', 'mmdet.models'])

OPTIMIZERS = Registry('optimizer', parent=MMDET_OPTIMIZERS, locations=['finers_mm.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMDET_OPTIM_WRAPPERS, locations=['finers_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMDET_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['finers_mm.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMDET_PARAM_SCHEDULERS, locations=['finers_mm.engine'])

METRICS = Registry(
    'metric', parent=MMDET_METRICS, locations=['finers_mm.evaluation', 'mmdet.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMDET_EVALUATOR, locations=['finers_mm.evaluation'])

VISUALIZERS = Registry(
    'visualizer', parent=MMDET_VISUALIZERS,
    locations=['finers_mm.visualization', 'mmdet.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMDET_VISBACKENDS, locations=['finers_mm.visualization'])
LOG_PROCESSORS = Registry('log_processor', parent=MMDET_LOG_PROCESSORS, locations=['finers_mm.engine'])

# mmdet has no function registry (collate functions live in mmengine's)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=['finers_mm.datasets'])

# GRPO reward terms: pure functions of (completion, sample, frame), built from config by type name.
REWARDS = Registry('reward', scope='finers_mm', locations=['finers_mm.rl'])
