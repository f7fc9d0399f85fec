# Copyright (c) finers_mm contributors. All rights reserved.
"""Atomic outputs: a reader (or a crash, a kill, a full disk) never sees half a file or folder.

Every output finers_mm writes goes through here: a file is written to a temporary file beside it,
flushed to disk (``fsync``), then renamed over the target (:func:`write_atomic`, and for JSON and
images :func:`write_json_atomic` / :func:`write_image_atomic`); a folder is written into a
temporary folder beside it and swapped into place only when complete (:func:`staged_dir`). So the
target holds the old complete output or the new complete one, never a mix: a failed write removes
its temporary file or folder and leaves the target as it was; a killed one leaves, at worst, a
hidden ``.<name>.*.tmp`` beside it. :func:`check_writable` fails a tool at its start, not after
the work, when an output cannot be written at all.
"""
import contextlib
import ctypes
import errno
import json
import math
import os
import os.path as osp
import shutil
import tempfile
from typing import Any, Iterator, Optional, Union

import cv2
import numpy as np

#: ``renameat2`` flag: swap two paths in one step (Linux >= 3.15; ext4, xfs, btrfs, tmpfs, ...)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def write_atomic(path: str, data: Union[str, bytes]) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``.

    Args:
        path (str): the destination; its folder is created if needed.
        data (str | bytes): the content; ``str`` is written as UTF-8.

    Raises:
        OSError: the write failed (e.g. a full disk: ``ENOSPC``); the message names ``path``, and
            ``path`` keeps its previous content (or stays absent).
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
            f.flush()
            # on disk before the rename: after a power loss the name never points at missing data
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as error:
        raise _naming(error, path) from error
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path: str, obj: Any, **dumps_kwargs) -> None:
    """Write ``obj`` as strict JSON (no ``NaN`` / ``Infinity``), atomically.

    Args:
        path (str): the destination.
        obj: a JSON-serialisable object.
        **dumps_kwargs: passed to :func:`json.dumps` (e.g. ``indent=2``).

    Raises:
        ValueError: ``obj`` holds a non-finite float; the message names the file and the key.
        OSError: the write failed (see :func:`write_atomic`).
    """
    try:
        text = json.dumps(obj, allow_nan=False, **dumps_kwargs)
    except ValueError as error:
        where = _non_finite_key(obj)
        raise ValueError(f'{path}: not written: {where} is not a finite number, which strict JSON '
                         'cannot hold. This is a bug of whatever produced the value: please '
                         'report it.') from error
    write_atomic(path, text)


def write_image_atomic(path: str, image: np.ndarray, channel_order: str = 'rgb') -> None:
    """Encode an image by the extension of ``path`` (OpenCV, as ``mmcv.imwrite``) and write it
    atomically.

    Args:
        path (str): the destination, e.g. ``vis/0000_demo.jpg`` or ``masks/0000_demo.png``.
        image (np.ndarray): (H, W, 3) uint8 colour image in ``channel_order``, or (H, W) grayscale.
        channel_order (str): ``'rgb'`` or ``'bgr'``, the order of ``image``'s channels.

    Raises:
        ValueError: OpenCV cannot encode ``image`` in that format.
        OSError: the write failed (see :func:`write_atomic`).
    """
    if image.ndim == 3 and channel_order == 'rgb':
        image = image[..., ::-1]
    try:
        ok, encoded = cv2.imencode(osp.splitext(path)[1], np.ascontiguousarray(image))
    except cv2.error:  # no encoder for the extension
        ok = False
    if not ok:
        raise ValueError(f'{path}: OpenCV cannot encode a {image.dtype} {image.shape} image as '
                         f'{osp.splitext(path)[1]!r}')
    write_atomic(path, encoded.tobytes())


def check_writable(path: str, what: str = 'the output') -> None:
    """Fail now, before any work, if ``path`` cannot be written: create its folder and a
    temporary file there (then remove it).

    A full disk is not caught here (the file's size is unknown): the atomic write reports it and
    keeps the old file.

    Args:
        path (str): a file the tool will write at its end.
        what (str): how the user gave it, for the message, e.g. ``'--out'``.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        OSError: its folder cannot be created or written (read-only file system, permissions).
    """
    if osp.isdir(path):
        raise IsADirectoryError(f'{what} {path} is a folder: give a file name')
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
        os.close(fd)
        os.remove(tmp)
    except OSError as error:
        raise OSError(error.errno, f'{what} {path} cannot be written ({error.strerror} in '
                      f'{folder}): choose a writable path') from error


@contextlib.contextmanager
def staged_dir(target: str) -> Iterator[str]:
    """Write a folder completely, then put it in place of ``target`` in one step.

    Yields a new temporary folder beside ``target`` (same file system); when the block ends
    without an exception, its files are flushed to disk and it replaces ``target``
    (:func:`replace_dir`). When the block raises, the temporary folder is removed, ``target`` is
    left as it was, and the error names ``target`` (an ``OSError``'s message; another error's
    note).

    Example::

        with staged_dir('checkpoints/lpr') as tmp:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)

    Args:
        target (str): the folder to create or replace.

    Yields:
        str: the temporary folder to write into.
    """
    target = osp.abspath(target)
    if osp.exists(target) and not osp.isdir(target):
        raise NotADirectoryError(f'{target} exists and is not a folder: give another output path')
    parent = osp.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{osp.basename(target)}.', suffix='.tmp')
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        _fsync_tree(tmp)
        replace_dir(tmp, target)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and error.errno is not None:
            raise _naming(error, target) from error
        if isinstance(error, Exception):  # e.g. safetensors' own error for a full disk
            error.add_note(f'could not write {target}: it was left as it was')
        raise


def replace_dir(src: str, dst: str) -> None:
    """Put the folder ``src`` at ``dst``, replacing any folder there, in one step where the system
    allows it.

    A new ``dst`` is a plain rename. An existing one is swapped with ``src`` by
    ``renameat2(RENAME_EXCHANGE)`` (Linux), then the old content, now at ``src``, is removed: a
    reader sees the old folder or the new one, never neither. Where the swap is unsupported, the
    old folder is first renamed aside, leaving ``dst`` absent for the instant between two renames.

    Args:
        src (str): a complete folder, on the same file system as ``dst``.
        dst (str): the destination folder.
    """
    if not osp.lexists(dst):
        try:
            os.rename(src, dst)
            return
        except OSError:  # another writer created it meanwhile: replace it like an old one
            if not osp.isdir(dst):
                raise
    if _exchange(src, dst):
        shutil.rmtree(src)
        return
    aside = tempfile.mkdtemp(dir=osp.dirname(osp.abspath(dst)),
                             prefix=f'.{osp.basename(dst)}.', suffix='.old.tmp')
    os.rename(dst, osp.join(aside, 'old'))
    os.rename(src, dst)
    shutil.rmtree(aside)


def _exchange(src: str, dst: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where it is unavailable."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), 'renameat2', None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, f'cannot swap {src} into {dst}: {os.strerror(code)}')


def _fsync_tree(folder: str) -> None:
    """Flush every file under ``folder``, and the folders themselves, to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(osp.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _naming(error: OSError, path: str) -> OSError:
    """``error`` with a message that names ``path`` (unchanged when it has no errno)."""
    if error.errno is None:
        return error
    kept = 'its previous content is kept' if osp.exists(path) else 'nothing was written there'
    return OSError(error.errno, f'{error.strerror}: could not write {path} ({kept})')


def _non_finite_key(obj: Any, where: str = '') -> Optional[str]:
    """The key path (``preds[0].bbox[2]``) of the first non-finite float in ``obj``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or 'the value'
    if isinstance(obj, dict):
        items = ((f'{where}.{key}' if where else str(key), value) for key, value in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f'{where}[{index}]', value) for index, value in enumerate(obj))
    else:
        return None
    for key, value in items:
        found = _non_finite_key(value, key)
        if found is not None:
            return found
    return None
