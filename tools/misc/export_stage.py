# Copyright (c) finers_mm contributors. All rights reserved.
"""Export a trained FineRS stage (an mmengine checkpoint of GlobalExplorer / LocalRefiner) as a
Hugging Face model directory, LoRA merged, so a FineRSDetector config (or any transformers code)
loads it with `pretrained=OUT_DIR`.

    python tools/misc/export_stage.py configs/finers/lpr_qwen7b.py work_dirs/lpr_qwen7b/iter_800.pth \
        checkpoints/finers_lpr_qwen7b

The export is written into a temporary folder beside OUT_DIR and put in its place only when
complete (:func:`finers_mm.utils.fileio.staged_dir`): a kill, an error or a full disk leaves OUT_DIR
as it was (absent, or the previous complete export), never a folder that mixes two exports or lacks
a file.
"""
import argparse
import os.path as osp
import re
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import finers_mm  # noqa: E402,F401  (the checkpoint-loading fix)
from finers_mm.registry import MODELS  # noqa: E402
from finers_mm.utils.checkpoint_guard import check_checkpoint_fits  # noqa: E402
from finers_mm.utils.fileio import staged_dir  # noqa: E402
from finers_mm.utils.run_config import load_config  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import CheckpointLoader, load_state_dict  # noqa: E402


def export_stage(cfg: Config, checkpoint: str, out_dir: str) -> str:
    """Load a stage's checkpoint and save its VLM (LoRA merged) and processor to ``out_dir``.

    Args:
        cfg (Config): the stage's training config (``model.type`` GlobalExplorer / LocalRefiner).
        checkpoint (str): the mmengine checkpoint written by ``tools/train.py``.
        out_dir (str): the Hugging Face directory to write.

    Returns:
        str: ``out_dir``.

    Raises:
        ValueError: the config's model has no ``vlm`` (not a FineRS stage), or the checkpoint is
            not one of this stage.
        OSError: writing failed (e.g. a full disk); ``out_dir`` is left as it was.
    """
    if 'vlm' not in cfg.model:
        raise ValueError(f"model.type={cfg.model.type!r} has no `vlm`: export_stage exports "
                         'GlobalExplorer / LocalRefiner checkpoints')
    init_default_scope(cfg.get('default_scope', 'finers_mm'))
    stage = MODELS.build(cfg.model)
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    check_checkpoint_fits(stage, loaded, checkpoint)  # a readable message before the strict load
    state_dict = loaded.get('state_dict', loaded)
    load_state_dict(stage, {re.sub(r'^module\.', '', key): value
                            for key, value in state_dict.items()}, strict=True)
    model = stage.vlm.model
    if stage.vlm.use_lora:
        model = model.merge_and_unload()
    with staged_dir(out_dir) as tmp_dir:
        save_stage(model, stage.vlm.processor, tmp_dir)
    return out_dir


def save_stage(model, processor, out_dir: str) -> None:
    """Save the Hugging Face model (weights, config, generation config) and its processor.

    Args:
        model (transformers.PreTrainedModel): the stage's VLM, LoRA merged.
        processor (transformers.ProcessorMixin): its processor (tokenizer, image processor).
        out_dir (str): an empty folder.
    """
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description='Export a FineRS stage as a Hugging Face dir')
    parser.add_argument('config', help="the stage's training config")
    parser.add_argument('checkpoint', help='mmengine checkpoint of the stage')
    parser.add_argument('out_dir', help='Hugging Face model directory to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config')
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    out = export_stage(cfg, args.checkpoint, args.out_dir)
    print(f'exported {cfg.model.type} from {args.checkpoint} to {out}')
    return out


if __name__ == '__main__':
    main()
