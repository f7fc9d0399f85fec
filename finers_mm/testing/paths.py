# Copyright (c) finers_mm contributors. All rights reserved.
"""Where the repository's configs, tools and bundled data are, for tests and benchmarks."""
import os.path as osp

#: root of the finers_mm repository (the package is installed editable from it)
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the repository's ``configs/``
CONFIGS = osp.join(REPO_ROOT, 'configs')
#: the 12 bundled synthetic FineRS-format records (``annotations/train.json`` + ``images/``)
BUNDLED_DATA = osp.join(REPO_ROOT, 'finers_mm', 'data', 'synthetic') + '/'
#: the tiny locating stages tools/misc/train_tiny_locator.py ships (``explorer/``, ``refiner/``,
#: ``manifest.json``); configs name it ``tiny_locator_weights`` (schedules/tiny_cpu.py)
TINY_LOCATOR = osp.join(REPO_ROOT, 'finers_mm', 'data', 'tiny_locator')


def config_path(*parts: str) -> str:
    """Path of a config of the repository, e.g. ``config_path('finers', 'finers_tiny_test.py')``.

    Args:
        *parts (str): the path below ``configs/``.

    Returns:
        str: the absolute path.

    Raises:
        FileNotFoundError: no such config (the tests run from a checkout of the repository).
    """
    path = osp.join(CONFIGS, *parts)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such config; finers_mm.testing expects the package '
                                'installed editable from a checkout of the repository')
    return path
