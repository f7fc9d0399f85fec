# Copyright (c) finers_mm contributors. All rights reserved.
"""tools/misc/export_stage.py: the export folder is the old complete export or the new complete
one, whatever happens during the export (an error, a kill at any point), never a mix."""
import hashlib
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from finers_mm.testing import REPO_ROOT, config_path
from finers_mm.testing.tools import load_tool, save_stage_checkpoint
from finers_mm.utils.run_config import load_config

TOOL = osp.join(REPO_ROOT, 'tools', 'misc', 'export_stage.py')
STAGE_CONFIG = config_path('finers', 'lpr_tiny.py')


@pytest.fixture(scope='module')
def export_tool():
    return load_tool('misc', 'export_stage.py')


@pytest.fixture(scope='module')
def stage(export_tool, tiny_models, tmp_path_factory) -> dict:
    """Two LPR checkpoints (as tools/train.py writes them) that differ in one weight, the config
    options that rebuild their stage, and a reference export of each."""
    folder = tmp_path_factory.mktemp('export_stage')
    checkpoints = {name: save_stage_checkpoint(str(folder / f'{name}.pth'), tiny_models,
                                               scale=scale)
                   for name, scale in (('old', 1.0), ('new', 2.0))}
    options, key = checkpoints['old']['options'], checkpoints['old']['key']
    checkpoints = {name: saved['path'] for name, saved in checkpoints.items()}
    references = {}
    for name, checkpoint in checkpoints.items():
        out = str(folder / f'reference_{name}')
        export_tool.export_stage(load_config(STAGE_CONFIG, options), checkpoint, out)
        references[name] = _digest(out)
    assert references['old'] != references['new']
    return dict(options=options, checkpoints=checkpoints, references=references, key=key)


def _digest(folder: str) -> dict:
    """{file name: sha256} of an export folder."""
    digests = {}
    for name in sorted(os.listdir(folder)):
        with open(osp.join(folder, name), 'rb') as f:
            digests[name] = hashlib.sha256(f.read()).hexdigest()
    return digests


def _export(tool, stage: dict, which: str, out_dir: str) -> str:
    return tool.export_stage(load_config(STAGE_CONFIG, stage['options']),
                             stage['checkpoints'][which], out_dir)


def test_export_writes_a_complete_folder_and_replaces_an_old_one_whole(export_tool, stage,
                                                                      tmp_path):
    out = tmp_path / 'lpr'
    _export(export_tool, stage, 'old', str(out))
    assert _digest(str(out)) == stage['references']['old']
    assert {'config.json', 'model.safetensors', 'tokenizer.json'} <= set(os.listdir(out))
    (out / 'stale.bin').write_text('a file of the old export only')
    _export(export_tool, stage, 'new', str(out))
    assert _digest(str(out)) == stage['references']['new']  # stale.bin went with the old export
    # the new checkpoint's weights (Hugging Face renames the keys when it saves)
    saved = load_file(str(out / 'model.safetensors'))
    [key] = [key for key in saved if key.endswith('embed_tokens.weight')]
    expected = torch.load(stage['checkpoints']['new'], weights_only=False)['state_dict']
    torch.testing.assert_close(saved[key], expected[stage['key']])
    assert os.listdir(tmp_path) == ['lpr']


def test_a_failed_export_keeps_the_old_one(export_tool, stage, tmp_path, monkeypatch):
    out = tmp_path / 'lpr'
    _export(export_tool, stage, 'old', str(out))

    def weights_then_error(model, processor, out_dir):
        model.save_pretrained(out_dir)
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(export_tool, 'save_stage', weights_then_error)
    with pytest.raises(OSError, match=f'No space left on device: could not write {out}'):
        _export(export_tool, stage, 'new', str(out))
    assert _digest(str(out)) == stage['references']['old']
    assert os.listdir(tmp_path) == ['lpr']  # the half-written temporary folder is gone


def test_a_checkpoint_of_another_model_is_refused(export_tool, stage, tmp_path):
    other = tmp_path / 'retinanet.pth'
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(3)}), other)
    with pytest.raises(ValueError, match=f'{other} does not fit LocalRefiner: it supplies 0'):
        _export(export_tool, dict(stage, checkpoints=dict(old=str(other))), 'old',
                str(tmp_path / 'lpr'))
    assert not (tmp_path / 'lpr').exists()


#: the export in a child process, paused (then killed by the test) at one point of its work
KILLED_EXPORT = textwrap.dedent('''
    import importlib.util, sys, time
    point, args = sys.argv[1], sys.argv[2:]

    def pause():
        print('PAUSED', flush=True)
        time.sleep(600)

    spec = importlib.util.spec_from_file_location('export_stage', {tool!r})
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from finers_mm.utils import fileio
    if point == 'weights':  # half the weights file written
        import transformers.modeling_utils as modeling_utils
        save_file = modeling_utils.safe_save_file

        def half_written(tensors, filename, *a, **k):
            save_file(tensors, filename, *a, **k)
            with open(filename, 'r+b') as f:
                f.truncate(f.seek(0, 2) // 2)
            pause()

        modeling_utils.safe_save_file = half_written
    elif point == 'processor':  # the weights written, the processor not
        tool.save_stage = lambda model, processor, out_dir: (model.save_pretrained(out_dir),
                                                             pause())
    elif point == 'swap':  # the new export complete, not yet in place
        tool_replace = fileio.replace_dir
        fileio.replace_dir = lambda src, dst: (pause(), tool_replace(src, dst))
    elif point == 'swapped':  # in place, the old export not yet removed
        exchange = fileio._exchange
        fileio._exchange = lambda src, dst: (exchange(src, dst), pause())[0]
    tool.main(args)
''').format(tool=TOOL)


def _kill_at(point: str, stage: dict, out_dir: str, script: str) -> None:
    """Run the export of the new checkpoint into ``out_dir``; SIGKILL it at ``point``."""
    options = [f'{key}={value}' for key, value in stage['options'].items()]
    child = subprocess.Popen(
        [sys.executable, script, point, STAGE_CONFIG, stage['checkpoints']['new'], out_dir,
         '--cfg-options', *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if line.rstrip().endswith('PAUSED'):  # after tqdm's unterminated bars
                break
        else:
            raise AssertionError(f'the export ended before {point}:\n' + ''.join(lines)[-3000:])
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
@pytest.mark.parametrize('overwrite,points', [
    (False, ('weights', 'processor', 'swap')),
    (True, ('weights', 'processor', 'swap', 'swapped')),
], ids=['fresh', 'overwrite'])
def test_a_killed_export_leaves_the_old_or_the_new_export(stage, tmp_path, overwrite, points):
    script = tmp_path / 'killed_export.py'
    script.write_text(KILLED_EXPORT)
    references = stage['references']
    for point in points:
        folder = tmp_path / point
        folder.mkdir()
        out = folder / 'lpr'
        if overwrite:
            _export(load_tool('misc', 'export_stage.py'), stage, 'old', str(out))
        _kill_at(point, stage, str(out), str(script))
        if point == 'swapped':
            assert _digest(str(out)) == references['new'], point
        elif overwrite:
            assert _digest(str(out)) == references['old'], point
        else:
            assert not out.exists(), point
        # what a kill leaves beside it: hidden temporary folders, never the target's name
        leftovers = [name for name in os.listdir(folder) if name != 'lpr']
        assert all(name.startswith('.lpr.') and name.endswith('.tmp') for name in leftovers)
        shutil.rmtree(folder)
