# Copyright (c) finers_mm contributors. All rights reserved.
"""The README's main job (tools/misc/quickstart.py) runs the demo on the embedded default."""
import importlib.util
import os.path as osp

import numpy as np
from PIL import Image

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_quickstart_runs_the_demo_on_a_bundled_sample(tmp_path, tiny_models, capsys):
    spec = importlib.util.spec_from_file_location(
        '_quickstart', osp.join(REPO_ROOT, 'tools', 'misc', 'quickstart.py'))
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)

    models_dir = osp.dirname(tiny_models['sam'])  # the session's tiny models: reused, not rebuilt
    prediction = quickstart.main(['--out-dir', str(tmp_path), '--models-dir', models_dir])

    printed = capsys.readouterr().out
    record = quickstart.first_bundled_record()
    assert record['Q'] in printed and 'answer   :' in printed
    image = Image.open(osp.join(quickstart.BUNDLED, 'images', record['image_path']))
    mask = np.asarray(Image.open(prediction['mask_file']))
    assert mask.shape == (image.size[1], image.size[0])
    assert osp.isfile(tmp_path / 'vis' / f"0000_{osp.splitext(record['image_path'])[0]}.jpg")
