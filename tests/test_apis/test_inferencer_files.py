# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSInferencer reads image files as the dataset pipeline does (16-bit PNG, EXIF-rotated JPEG)
and writes its outputs atomically, the prediction as strict JSON."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from finers_mm.apis import FineRSInferencer
from finers_mm.datasets.transforms import LoadFineRSImage
from finers_mm.testing import config_path

QUESTION = 'Please segment the bright square.'


@pytest.fixture(scope='module')
def inferencer(tiny_models):
    cfg = Config.fromfile(config_path('finers', 'finers_tiny_test.py'))
    cfg.merge_from_dict({'model.explorer.vlm.pretrained': tiny_models['qwen2_5_vl'],
                         'model.refiner.vlm.pretrained': tiny_models['qwen2_5_vl'],
                         'model.mask_head.config': tiny_models['sam_config'],
                         'model.mask_head.checkpoint': tiny_models['sam']})
    return FineRSInferencer(cfg, device='cpu', show_progress=False)


def _original(inferencer, path: str) -> np.ndarray:
    """The ORIGINAL image the model gets for ``path`` (the packed full-resolution view)."""
    packed = inferencer.pipeline(dict(img=path, question=QUESTION))
    return packed['inputs']['original'].numpy()


def _as_the_dataset_reads(path: str) -> np.ndarray:
    return LoadFineRSImage()(dict(img_path=path))['img']


def test_a_16_bit_grayscale_png_is_read_as_the_dataset_reads_it(inferencer, tmp_path):
    levels = (np.arange(40 * 64).reshape(40, 64) * 25).astype(np.uint16)  # 0 .. 63975
    path = str(tmp_path / 'depth16.png')
    assert cv2.imwrite(path, levels)
    assert Image.open(path).mode.startswith('I;16')
    read = _original(inferencer, path)
    np.testing.assert_array_equal(read, _as_the_dataset_reads(path))
    np.testing.assert_array_equal(read, np.repeat((levels >> 8).astype(np.uint8)[..., None], 3, 2))
    # the former reader (PIL's convert('RGB')) clipped it to white
    assert (np.asarray(Image.open(path).convert('RGB')) == 255).mean() > 0.9


def test_an_exif_rotated_jpeg_is_read_as_displayed(inferencer, tmp_path):
    stored = np.zeros((32, 48, 3), np.uint8)  # 48 wide, 32 high as stored
    stored[:8, :8] = 255  # a white square at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = str(tmp_path / 'phone.jpg')
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    read = _original(inferencer, path)
    assert read.shape == (48, 32, 3)  # displayed: 32 wide, 48 high
    np.testing.assert_array_equal(read, _as_the_dataset_reads(path))
    assert read[:8, -8:].mean() > 200 and read[-8:, :8].mean() < 50  # the square moved top-right

    result = inferencer(dict(img=path, question=QUESTION), out_dir=str(tmp_path / 'out'),
                        return_datasamples=True)
    [sample] = result['predictions']
    assert tuple(sample.ori_shape) == (48, 32)
    mask = cv2.imread(str(tmp_path / 'out' / 'masks' / '0000_phone.png'), 0)
    assert mask.shape == (48, 32)


def test_outputs_are_complete_files_and_strict_json(inferencer, tmp_path, monkeypatch):
    image = np.full((40, 60, 3), 90, np.uint8)
    out = tmp_path / 'out'
    inferencer(dict(img=image, question=QUESTION), out_dir=str(out))
    written = sorted(osp.relpath(osp.join(root, name), out)
                     for root, _, names in os.walk(out) for name in names)
    assert written == ['masks/0000_image.png', 'preds/0000_image.json', 'vis/0000_image.jpg']
    assert cv2.imread(str(out / 'vis' / '0000_image.jpg')) is not None

    pred2dict = FineRSInferencer.pred2dict

    def non_finite(pred):
        return dict(pred2dict(pred), bbox=[0.0, 0.0, float('inf'), 5.0])

    monkeypatch.setattr(FineRSInferencer, 'pred2dict', staticmethod(non_finite))
    with pytest.raises(ValueError, match=r'again/preds/0000_image\.json: not written: bbox\[2\] '
                                         'is not a finite number'):
        inferencer(dict(img=image, question=QUESTION), out_dir=str(tmp_path / 'again'))
    assert not (tmp_path / 'again' / 'preds' / '0000_image.json').exists()
