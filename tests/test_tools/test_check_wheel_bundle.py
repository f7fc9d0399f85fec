# Copyright (c) finers_mm contributors. All rights reserved.
"""tools/misc/check_wheel_bundle.py and the wheel list of tools/misc/device_bundle.sh: the set
carried to the GPU machine never shadows the device's torch/numpy, holds one version per package,
meets every need of its wheels there, stays under the size limit, and follows setup.py's pins."""
import os.path as osp
import re
import shutil
import subprocess
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from finers_mm.testing import REPO_ROOT
from finers_mm.testing.tools import load_tool

BUNDLE_SH = osp.join(REPO_ROOT, 'tools', 'misc', 'device_bundle.sh')


@pytest.fixture(scope='module')
def cwb():
    return load_tool('misc', 'check_wheel_bundle.py')


def fake_wheel(folder, name: str, version: str, requires=(), pad: int = 0) -> str:
    """A minimal wheel file: its METADATA with ``requires`` and ``pad`` bytes of payload."""
    path = osp.join(str(folder), f'{name}-{version}-py3-none-any.whl')
    meta = f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n' + ''.join(
        f'Requires-Dist: {r}\n' for r in requires)
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(f'{name}-{version}.dist-info/METADATA', meta)
        if pad:
            zf.writestr(f'{name}/blob.bin', b'\0' * pad, compress_type=zipfile.ZIP_STORED)
    return path


def test_device_builds_are_forbidden_not_their_namesakes(cwb):
    for name in ('torch', 'torchvision', 'numpy', 'triton', 'nvidia-cublas', 'cuda-bindings',
                 'Torch'):
        assert cwb.is_forbidden(name), name
    for name in ('torchmetrics', 'torch-geometric', 'numpyro', 'mmcv', 'transformers'):
        assert not cwb.is_forbidden(name), name


def test_a_clean_set_passes_and_each_fault_is_named(cwb, tmp_path):
    device = {'numpy': '2.5.2', 'tokenizers': '0.23.2', 'pillow': None,
              'opencv-python-headless': None}
    good = [fake_wheel(tmp_path, 'mmengine', '0.10.7',
                       ['addict', 'numpy', 'opencv-python>=3', 'regex; sys_platform == "win32"',
                        'pytest; extra == "tests"']),
            fake_wheel(tmp_path, 'addict', '2.4.0')]
    assert cwb.check_bundle(good, max_mib=1, device=device) == []

    bad_dir = tmp_path / 'bad'
    bad_dir.mkdir()
    bad = [fake_wheel(bad_dir, 'numpy', '2.0.0'),
           fake_wheel(bad_dir, 'mmdet', '3.3.0', ['terminaltables', 'tokenizers<0.23']),
           fake_wheel(bad_dir, 'mmdet', '3.2.0'),
           fake_wheel(bad_dir, 'blob', '1.0', pad=2 * 2**20)]
    problems = '\n'.join(cwb.check_bundle(bad, max_mib=1, device=device))
    assert 'numpy must not travel' in problems
    assert 'mmdet: two versions' in problems
    assert 'terminaltables is neither in the bundle nor on the device' in problems
    assert 'tokenizers 0.23.2 (device) does not satisfy <0.23' in problems
    assert 'over 1 MiB' in problems


def test_the_bundles_version_wins_over_the_devices(cwb):
    device = {'transformers': '5.17.0'}
    assert cwb.unmet_requirement('transformers>=5.20', {'transformers': '5.20.2'}, device) is None
    assert 'does not satisfy' in cwb.unmet_requirement('transformers>=5.20', {}, device)
    # a device package whose version was not read is taken as fine
    assert cwb.unmet_requirement('pyarrow>=21', {}, {'pyarrow': None}) is None


def test_select_picks_the_pinned_version_and_names_a_missing_one(cwb, tmp_path):
    fake_wheel(tmp_path, 'peft', '0.21.2')
    fake_wheel(tmp_path, 'peft', '0.19.0')
    (chosen,) = cwb.select_wheels(str(tmp_path), ['peft==0.21.2'])
    assert osp.basename(chosen) == 'peft-0.21.2-py3-none-any.whl'
    with pytest.raises(FileNotFoundError, match='trl==1.16.0'):
        cwb.select_wheels(str(tmp_path), ['trl==1.16.0'])
    with pytest.raises(ValueError, match='pin each wheel'):
        cwb.select_wheels(str(tmp_path), ['peft>=0.21'])


def test_cli_fails_on_a_bad_set(cwb, tmp_path, capsys):
    fake_wheel(tmp_path, 'torch', '2.11.0')
    assert cwb.main(['--check', str(tmp_path)]) == 1
    assert 'torch must not travel' in capsys.readouterr().err


def bundle_wheels():
    """The ``WHEELS=( ... )`` pins of tools/misc/device_bundle.sh."""
    with open(BUNDLE_SH, encoding='utf-8') as f:
        block = re.search(r'^WHEELS=\((.*?)^\)', f.read(), re.S | re.M).group(1)
    return [Requirement(word) for line in block.splitlines()
            for word in line.split('#')[0].split()]


#: setup.py's requirements the bundle does not carry as a downloaded wheel, and why
NOT_DOWNLOADED = {
    'torch': "the device's CUDA build", 'torchvision': "the device's build",
    'numpy': "the device's build", 'mmcv': 'compiled by device_bundle.sh (with ops)',
    'sam2': 'an sdist, imported only by the SAM 2 mask head, which the GPU check does not build',
}


def test_the_bundle_follows_setup_pys_pins(cwb):
    """Each of setup.py's requirements is carried at its pin, or met by the device (a bumped pin in
    setup.py must be bumped here too)."""
    import ast
    with open(osp.join(REPO_ROOT, 'setup.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    install = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], 'id', '') == 'INSTALL_REQUIRES')
    carried = {canonicalize_name(r.name): str(r.specifier) for r in bundle_wheels()}
    device = {canonicalize_name(k): v for k, v in cwb.DEVICE_PACKAGES.items()}
    for text in install:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in NOT_DOWNLOADED:
            continue
        if name in carried:
            assert carried[name] == str(req.specifier) or not req.specifier, (text, carried[name])
        else:
            # an exact pin cannot be met by a device package whose version was never read
            exact = any(s.operator == '==' for s in req.specifier)
            assert not (exact and device.get(name) is None), (
                f'{text}: pinned, and the device version is unknown: add it to WHEELS')
            assert cwb.unmet_requirement(text, {}, device) is None, (
                f'{text}: not carried and not met on the device: add it to WHEELS in {BUNDLE_SH}')
    assert not [r.name for r in bundle_wheels() if cwb.is_forbidden(r.name)]


@pytest.mark.skipif(shutil.which('gcc') is None or shutil.which('strip') is None,
                    reason='needs gcc and strip')
def test_strip_wheel_shrinks_the_extension_and_keeps_a_valid_wheel(tmp_path):
    """mmcv_build.sh's mmcv_strip_wheel: the .so loses its debug symbols, RECORD matches."""
    import sys
    src = tmp_path / 'ext.c'
    src.write_text('int answer(void) { return 42; }\n' + ''.join(
        f'static int f{i}(int x) {{ return x * {i}; }}\nint g{i}(int x) {{ return f{i}(x); }}\n'
        for i in range(200)))
    so = tmp_path / '_ext.so'
    subprocess.run(['gcc', '-g', '-O0', '-shared', '-fPIC', '-o', str(so), str(src)], check=True)
    tree = tmp_path / 'tree' / 'mmcvfake-2.1.0'
    (tree / 'mmcvfake').mkdir(parents=True)
    shutil.copy(so, tree / 'mmcvfake' / '_ext.so')
    info = tree / 'mmcvfake-2.1.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: mmcvfake\nVersion: 2.1.0\n')
    (info / 'WHEEL').write_text('Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n'
                                'Tag: py3-none-any\n')
    subprocess.run([sys.executable, '-m', 'wheel', 'pack', '-d', str(tmp_path), str(tree)],
                   check=True, capture_output=True)
    whl = str(tmp_path / 'mmcvfake-2.1.0-py3-none-any.whl')
    out = tmp_path / 'out'
    script = osp.join(REPO_ROOT, 'tools', 'misc', 'mmcv_build.sh')
    subprocess.run(['bash', '-c', f'source {script} && mmcv_strip_wheel "$0" "$1" "$2"',
                    sys.executable, whl, str(out)], check=True)
    (stripped,) = out.iterdir()
    with zipfile.ZipFile(stripped) as zf:
        stripped_so = zf.read('mmcvfake/_ext.so')
        record = zf.read('mmcvfake-2.1.0.dist-info/RECORD').decode()
    size = len(stripped_so)
    assert b'.debug_info' in so.read_bytes() and b'.debug_info' not in stripped_so
    assert size < so.stat().st_size
    assert re.search(r'^mmcvfake/_ext\.so,sha256=\S+,%d$' % size, record, re.M)
    # `wheel unpack` checks every file against RECORD
    subprocess.run([sys.executable, '-m', 'wheel', 'unpack', '-d', str(tmp_path / 'u'),
                    str(stripped)], check=True, capture_output=True)
