# Copyright (c) finers_mm contributors. All rights reserved.
"""A wrong checkpoint never runs as if it were right, in tools/test.py and tools/demo.py
(FineRSInferencer): a stage checkpoint given to the chain, a file that is not a checkpoint and a
URL are refused with a message that names the file and the fix."""
import os.path as osp

import pytest

from finers_mm.testing import BUNDLED_DATA, config_path
from finers_mm.testing.tools import load_tool, save_stage_checkpoint
from finers_mm.utils.checkpoint_guard import ALLOW_DOWNLOAD_ENV

IMAGE = osp.join(BUNDLED_DATA, 'images', 'train_000000.jpg')


@pytest.fixture(scope='module')
def chain_options(tiny_models) -> list:
    """--cfg-options pointing the tiny chain at the session's tiny models and the bundled data."""
    return [f'model.explorer.vlm.pretrained={tiny_models["qwen2_5_vl"]}',
            f'model.refiner.vlm.pretrained={tiny_models["qwen2_5_vl"]}',
            f'model.mask_head.config={tiny_models["sam_config"]}',
            f'model.mask_head.checkpoint={tiny_models["sam"]}',
            f'test_dataloader.dataset.data_root={BUNDLED_DATA}',
            'test_dataloader.dataset.indices=1']


@pytest.fixture(scope='module')
def stage_checkpoint(tiny_models, tmp_path_factory) -> str:
    """An LPR checkpoint as tools/train.py writes it: the stage's weights and its config text."""
    return save_stage_checkpoint(str(tmp_path_factory.mktemp('lpr_tiny') / 'iter_12.pth'),
                                 tiny_models)['path']


def _assert_names_the_stage_fix(message: str, checkpoint: str) -> None:
    assert message.startswith(f'{checkpoint} does not fit FineRSDetector: it supplies 0 of')
    assert 'a FineRS stage (LocalRefiner, vlm.* keys)' in message
    assert f'tools/misc/export_stage.py STAGE_CONFIG {checkpoint} OUT_DIR' in message
    assert 'set model.refiner.vlm.pretrained=OUT_DIR' in message


def test_test_tool_refuses_a_stage_checkpoint(chain_options, stage_checkpoint, tmp_path):
    test_tool = load_tool('test.py')
    config = config_path('finers', 'finers_tiny_test.py')
    with pytest.raises(ValueError) as info:
        test_tool.main([config, stage_checkpoint, '--work-dir', str(tmp_path),
                        '--cfg-options', *chain_options])
    _assert_names_the_stage_fix(str(info.value), stage_checkpoint)


def test_demo_refuses_a_stage_checkpoint(chain_options, stage_checkpoint, tmp_path):
    demo = load_tool('demo.py')
    with pytest.raises(ValueError) as info:
        demo.main([IMAGE, 'Where is the star?', '--weights', stage_checkpoint, '--device', 'cpu',
                   '--out-dir', str(tmp_path / 'out'), '--cfg-options', *chain_options])
    _assert_names_the_stage_fix(str(info.value), stage_checkpoint)
    assert not (tmp_path / 'out').exists()


def test_a_file_that_is_not_a_checkpoint_is_named_by_both_tools(chain_options, tmp_path):
    not_checkpoint = tmp_path / 'preds.json'
    not_checkpoint.write_text('{"gIoU": 0.5}')
    message = f'{not_checkpoint} is not a checkpoint: a JSON / text file; expected an mmengine'
    with pytest.raises(ValueError, match=message):
        load_tool('demo.py').main([IMAGE, 'q', '--weights', str(not_checkpoint), '--device',
                                   'cpu', '--cfg-options', *chain_options])
    with pytest.raises(ValueError, match=message):
        load_tool('test.py').main([config_path('finers', 'finers_tiny_test.py'),
                                   str(not_checkpoint), '--work-dir', str(tmp_path / 'work'),
                                   '--cfg-options', *chain_options])


def test_a_url_is_refused_by_both_tools(chain_options, tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    url = 'https://download.example.com/finers/iter_800.pth'
    message = f'checkpoint {url}: finers_mm does not download checkpoints'
    with pytest.raises(ValueError, match=message) as info:
        load_tool('demo.py').main([IMAGE, 'q', '--weights', url, '--device', 'cpu',
                                   '--cfg-options', *chain_options])
    assert f'{ALLOW_DOWNLOAD_ENV}=1' in str(info.value)
    with pytest.raises(ValueError, match=message):
        load_tool('test.py').main([config_path('finers', 'finers_tiny_test.py'), url,
                                   '--work-dir', str(tmp_path / 'work'),
                                   '--cfg-options', *chain_options])
