# Copyright (c) finers_mm contributors. All rights reserved.
"""The README's main job (tools/misc/quickstart.py) runs on the embedded default and writes its outputs."""
import importlib.util
import os.path as osp

import numpy as np
from PIL import Image

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_quickstart_writes_completion_mask_and_overlay(tmp_path, tiny_models, capsys):
    spec = importlib.util.spec_from_file_location(
        '_quickstart', osp.join(REPO_ROOT, 'tools', 'misc', 'quickstart.py'))
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)

    models_dir = osp.dirname(tiny_models['sam'])  # the session's tiny models: reused, not rebuilt
    out_dir = tmp_path / 'out'
    quickstart.main(['--out-dir', str(out_dir), '--models-dir', models_dir,
                     '--max-new-tokens', '8'])

    printed = capsys.readouterr().out
    image, _ = quickstart.first_bundled_sample()
    for name in ('completion.txt', 'mask.png', 'overlay.jpg'):
        assert str(out_dir / name) in printed
    assert (out_dir / 'completion.txt').read_text().strip() != ''
    mask = np.asarray(Image.open(out_dir / 'mask.png'))
    assert mask.shape == image.shape[:2]
    assert set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(out_dir / 'overlay.jpg')).shape == image.shape
