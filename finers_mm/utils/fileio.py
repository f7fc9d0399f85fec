# Copyright (c) finers_mm contributors. All rights reserved.
"""Atomic file writes: a reader (or a crash) never sees half a file."""
import os
import os.path as osp
import tempfile
from typing import Union


def write_atomic(path: str, data: Union[str, bytes]) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    Args:
        path (str): the destination; its folder is created if needed.
        data (str | bytes): the content; ``str`` is written as UTF-8.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
