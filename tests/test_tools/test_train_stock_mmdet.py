# Copyright (c) finers_mm contributors. All rights reserved.
"""tools/train.py and tools/test.py run a stock mmdet detector config (mmdet scope, mmdet types)."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from finers_mm.testing import REPO_ROOT

#: subprocess runs of the tools: end to end
pytestmark = pytest.mark.slow


def _write_tiny_coco(root: str, num_images: int = 2, size: int = 64) -> None:
    """A COCO-format set of `num_images` noise images with one bright square each."""
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for index in range(num_images):
        pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        x, y, side = 10 + 8 * index, 12, 20
        pixels[y:y + side, x:x + side] = 255
        name = f'{index}.png'
        Image.fromarray(pixels).save(osp.join(root, 'images', name))
        images.append(dict(id=index, file_name=name, width=size, height=size))
        annotations.append(dict(id=index, image_id=index, category_id=1, bbox=[x, y, side, side],
                                area=side * side, iscrowd=0))
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name='object')]), f)


def test_stock_mmdet_retinanet_trains_and_tests_through_our_tools(tmp_path):
    data_root = str(tmp_path / 'coco')
    _write_tiny_coco(data_root)
    config = tmp_path / 'retinanet_tiny.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
        model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=1),
                     test_cfg=dict(score_thr=0.0))  # random weights: keep every box
        metainfo = dict(classes=('object', ))
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='PackDetInputs'),
        ]
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
        ]
        dataset = dict(type='CocoDataset', data_root='{data_root}', metainfo=metainfo,
                       ann_file='ann.json', data_prefix=dict(img='images/'),
                       filter_cfg=dict(filter_empty_gt=False))
        train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                                dataset=dict(dataset, pipeline=pipeline))
        test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                               dataset=dict(dataset, pipeline=test_pipeline, test_mode=True))
        test_evaluator = dict(type='CocoMetric', ann_file='{data_root}/ann.json', metric='bbox')
        val_dataloader = val_evaluator = val_cfg = None
        train_cfg = dict(max_epochs=1)
        param_scheduler = []
        default_hooks = dict(logger=dict(interval=1))
        """))
    work_dir = str(tmp_path / 'work')
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), str(config),
                    '--work-dir', work_dir], check=True, env=env, timeout=600)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)

    out = str(tmp_path / 'preds.pkl')
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), str(config), checkpoint,
         '--work-dir', work_dir, '--out', out], check=True, env=env, timeout=600,
        capture_output=True, text=True)
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    assert osp.getsize(out) > 0
