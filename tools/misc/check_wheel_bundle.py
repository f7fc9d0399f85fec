# Copyright (c) finers_mm contributors. All rights reserved.
"""Pick and check the wheels carried to the lent GPU machine (``.whl/``, by
``tools/misc/device_bundle.sh``).

The device installs them with ``pip install --no-index --no-deps --target /tmp/site`` and puts
``/tmp/site`` first on ``PYTHONPATH``, so pip checks nothing there. This tool checks instead, here:

* no wheel of a package whose device build must win (torch, torchvision, numpy, triton, nvidia-*,
  cuda-*): a CPU or another CUDA build first on the path would shadow the device's;
* one version per package (two stop the whole install);
* every ``Requires-Dist`` of every wheel (markers read for CPython 3.12 on Linux, extras skipped) is
  met by a wheel of the set or by a package the device has (:data:`DEVICE_PACKAGES`, from
  the workplace's list of that image; a version is checked where the list gives one);
* the total size is under ``--max-mib`` (a device call carries 64 MiB with the working tree).

Stdlib and ``packaging`` only: it runs in the bundle's build venv, which has no finers_mm stack.

    python tools/misc/check_wheel_bundle.py --select DOWNLOADS --copy-to DIR -- mmdet==3.3.0 ...
    python tools/misc/check_wheel_bundle.py --check DIR --max-mib 60
"""
import argparse
import email.parser
import os
import os.path as osp
import shutil
import sys
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

#: The device image's Python packages (workplace list of 2026-11-17) with the versions a session's
#: ``pip list`` there showed; ``None``: there, version not read (any version is taken as fine).
DEVICE_PACKAGES: Dict[str, Optional[str]] = {
    **{name: None for name in (
        'absl-py aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs build certifi '
        'charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings '
        'cuda-core cuda-pathfinder cuda-toolkit cycler cython diffrax e3nn einops equinox etils '
        'execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec h11 h5py hf-xet '
        'httpcore httpx humanize hypothesis idna imageio iniconfig interface-meta jinja2 joblib '
        'kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml '
        'markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack '
        'multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda '
        'nvidia-ml-py opencv-python-headless optax opt-einsum opt-einsum-fx optimistix '
        'orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker '
        'prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing '
        'pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock '
        'pytest-timeout pytest-xdist python-dateutil pyyaml regex requests rich sacrebleu '
        'scikit-build-core scikit-image scikit-learn scipy seaborn setuptools shellingham simplejson '
        'six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server '
        'tensorstore threadpoolctl tifffile timm toolz tqdm treescope typer typing-extensions '
        'typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl '
        'zipp').split()},
    'accelerate': '1.15.0', 'huggingface-hub': '1.33.0', 'numpy': '2.5.2', 'safetensors': '0.8.0',
    'tokenizers': '0.23.2', 'torch': '2.11.0', 'torchvision': '0.26.0', 'torchaudio': '2.11.0',
    'transformers': '5.17.0', 'triton': '3.6.0', 'sentencepiece': '0.2.2', 'tiktoken': '0.14.0',
    'jax': '0.11.2', 'jaxlib': '0.11.2', 'onnx': '1.23.1', 'torchmetrics': '1.9.0',
    'pytorch-lightning': '2.6.6', 'sentence-transformers': '6.0.1', 'torch-geometric': '2.8.0.post1',
}

#: Distributions that provide the same import as another one the device has (mmcv asks for
#: opencv-python; the device's opencv-python-headless provides the same ``cv2``).
PROVIDED_BY: Dict[str, str] = {'opencv-python': 'opencv-python-headless'}

#: Packages the bundle must never carry: the device's builds (CUDA) must stay first on the path.
FORBIDDEN_PREFIXES: Tuple[str, ...] = ('torch', 'torchvision', 'torchaudio', 'numpy', 'triton',
                                       'nvidia-', 'cuda-')

#: The device's interpreter, for Requires-Dist markers.
DEVICE_MARKERS = dict(default_environment(), python_version='3.12', python_full_version='3.12.3',
                      implementation_name='cpython', platform_python_implementation='CPython',
                      sys_platform='linux', platform_system='Linux', os_name='posix',
                      platform_machine='x86_64', extra='')


def wheel_key(filename: str) -> Tuple[str, str]:
    """The canonical name and version of a wheel file.

    Args:
        filename (str): a wheel's file name or path (``mmdet-3.3.0-py3-none-any.whl``).

    Returns:
        tuple[str, str]: e.g. ``('mmdet', '3.3.0')``.
    """
    name, version, _, _ = parse_wheel_filename(osp.basename(filename))
    return canonicalize_name(name), str(version)


def is_forbidden(name: str) -> bool:
    """Whether the bundle must not carry a package (its device build must win)."""
    name = canonicalize_name(name)
    return any(name == p or (p.endswith('-') and name.startswith(p)) for p in FORBIDDEN_PREFIXES)


def read_requires(path: str) -> List[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA.

    Args:
        path (str): the ``.whl`` file.

    Returns:
        list[str]: the requirement strings, markers included.
    """
    with zipfile.ZipFile(path) as zf:
        metas = [n for n in zf.namelist()
                 if n.endswith('.dist-info/METADATA') and n.count('/') == 1]
        if len(metas) != 1:
            raise ValueError(f'{path}: expected one */METADATA in the wheel, found {metas}; '
                             'the file is not a wheel or is damaged: download it again')
        meta = email.parser.Parser().parsestr(zf.read(metas[0]).decode('utf-8'))
    return meta.get_all('Requires-Dist') or []


def unmet_requirement(req_text: str, bundle: Dict[str, str],
                      device: Dict[str, Optional[str]]) -> Optional[str]:
    """Why one requirement is not met on the device with the bundle installed, or ``None``.

    The bundle's version wins over the device's (``/tmp/site`` is first on the path).

    Args:
        req_text (str): a ``Requires-Dist`` value, e.g. ``'tokenizers<=0.23,>=0.22'``.
        bundle (dict[str, str]): canonical name -> version of the bundle's wheels.
        device (dict[str, str | None]): canonical name -> version (``None``: not read) there.

    Returns:
        str | None: the reason, or ``None`` if met (or not needed: an extra, another platform).
    """
    try:
        req = Requirement(req_text)
    except InvalidRequirement as err:
        return f'unreadable requirement {req_text!r} ({err})'
    if req.marker is not None and not req.marker.evaluate(DEVICE_MARKERS):
        return None
    name = canonicalize_name(req.name)
    if name in bundle:
        have, where = bundle[name], 'bundle'
    elif name in device or PROVIDED_BY.get(name) in device:
        have, where = device.get(name, device.get(PROVIDED_BY.get(name, ''))), 'device'
        if have is None:
            return None
    else:
        return f'{req.name} is neither in the bundle nor on the device: add it to WHEELS'
    if req.specifier and not req.specifier.contains(Version(have), prereleases=True):
        return f'{req.name} {have} ({where}) does not satisfy {req.specifier}'
    return None


def check_bundle(paths: Sequence[str], max_mib: float,
                 device: Optional[Dict[str, Optional[str]]] = None) -> List[str]:
    """Every problem of a set of wheels bound for the device.

    Args:
        paths (Sequence[str]): the ``.whl`` files.
        max_mib (float): the largest total size allowed, in MiB.
        device (dict, optional): the device's packages; default :data:`DEVICE_PACKAGES`.

    Returns:
        list[str]: one line per problem (empty: the set is fine).
    """
    device = {canonicalize_name(k): v for k, v in (device or DEVICE_PACKAGES).items()}
    problems: List[str] = []
    bundle: Dict[str, str] = {}
    for path in sorted(paths):
        name, version = wheel_key(path)
        if is_forbidden(name):
            problems.append(f'{osp.basename(path)}: {name} must not travel (it would shadow the '
                            "device's own build): remove it from WHEELS")
        if name in bundle and bundle[name] != version:
            problems.append(f'{name}: two versions ({bundle[name]}, {version}): keep one')
        bundle[name] = version
    for path in sorted(paths):
        for req_text in read_requires(path):
            why = unmet_requirement(req_text, bundle, device)
            if why:
                problems.append(f'{osp.basename(path)} needs {why}')
    total = sum(osp.getsize(p) for p in paths) / 2**20
    if total > max_mib:
        problems.append(f'the wheels total {total:.1f} MiB, over {max_mib} MiB: a device call '
                        'carries 64 MiB with the working tree; drop or strip a wheel')
    return problems


def select_wheels(folder: str, specs: Sequence[str]) -> List[str]:
    """The wheel in ``folder`` for each ``name==version`` spec (the folder may hold others).

    Args:
        folder (str): the download cache.
        specs (Sequence[str]): pinned requirements, e.g. ``['mmdet==3.3.0']``.

    Returns:
        list[str]: one path per spec, in order.

    Raises:
        FileNotFoundError: a spec has no wheel in the folder.
    """
    by_key = {wheel_key(f): osp.join(folder, f) for f in os.listdir(folder) if f.endswith('.whl')}
    chosen = []
    for spec in specs:
        req = Requirement(spec)
        pins = [s.version for s in req.specifier if s.operator == '==']
        if len(pins) != 1:
            raise ValueError(f'{spec!r}: pin each wheel with one ==version')
        key = (canonicalize_name(req.name), str(Version(pins[0])))
        if key not in by_key:
            raise FileNotFoundError(f'no wheel for {spec} in {folder}: run `pip download` for it')
        chosen.append(by_key[key])
    return chosen


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Select (``--select DIR --copy-to OUT -- SPECS``) or check (``--check DIR``) wheels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--select', metavar='DIR', help='pick the SPECS wheels from DIR')
    parser.add_argument('--copy-to', metavar='OUT', help='copy the picked wheels into OUT')
    parser.add_argument('--check', metavar='DIR', help='check the wheels in DIR')
    parser.add_argument('--max-mib', type=float, default=60.0)
    parser.add_argument('specs', nargs='*')
    args = parser.parse_args(argv)
    if args.select:
        if not args.copy_to:
            parser.error('--select needs --copy-to')
        for path in select_wheels(args.select, args.specs):
            shutil.copy2(path, args.copy_to)
    if args.check:
        paths = sorted(osp.join(args.check, f) for f in os.listdir(args.check)
                       if f.endswith('.whl'))
        for path in paths:
            print(f'  {osp.getsize(path) / 2**20:7.2f} MiB  {osp.basename(path)}')
        print(f'  {sum(osp.getsize(p) for p in paths) / 2**20:7.2f} MiB  total, '
              f'{len(paths)} wheels')
        problems = check_bundle(paths, args.max_mib)
        for line in problems:
            print(f'ERROR: {line}', file=sys.stderr)
        if problems:
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
