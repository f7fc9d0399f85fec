# Copyright (c) finers_mm contributors. All rights reserved.
"""Save a freshly built, randomly initialised mmdet detector as a checkpoint (no download).

Examples::

    python projects/mmdet_refiner/tools/build_tiny_detector.py \
        projects/mmdet_refiner/configs/rtmdet_tiny_1cls.py \
        work_dirs/tiny_models/mmdet_refiner/rtmdet_tiny_1cls.pth
    python projects/mmdet_refiner/tools/build_tiny_detector.py \
        projects/mmdet_refiner/configs/grounding-dino_tiny.py \
        work_dirs/tiny_models/mmdet_refiner/grounding-dino_tiny.pth \
        --text-encoder work_dirs/tiny_models/mmdet_refiner/bert_tiny

The first command also builds the detector of projects/reasoning_proposer (its configs name the
same tiny RTMDet config and checkpoint path). ``main(argv)`` returns the checkpoint path (the
tests call it in-process).

The weights are random (``torch.manual_seed(seed)`` then the detector's ``init_weights``; the config
must name no pretrained download), deterministic in ``--seed``. The checkpoint holds ``state_dict``
and ``meta.dataset_meta.classes`` (the config's ``metainfo.classes``), like one saved by a runner.

``--text-encoder DIR`` first writes a tiny random BERT (Hugging Face format: a 32-wide, one-layer
``BertModel`` and a WordPiece tokenizer over lowercase letters, digits and punctuation) into DIR and
builds the detector's ``model.language_model`` from it (Grounding DINO / GLIP configs).
"""
import argparse
import os
import os.path as osp
import string
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))

import finers_mm  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu  # noqa: E402

from finers_mm.registry import MODELS  # noqa: E402

#: the tiny BERT's WordPiece vocabulary: special tokens, punctuation, characters and suffixes
BERT_VOCAB = (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + list('.?,!-\'"()/:;') +
              list(string.ascii_lowercase + string.digits) +
              ['##' + c for c in string.ascii_lowercase + string.digits])


def build_tiny_bert(out_dir: str, seed: int = 0) -> str:
    """Write a tiny random BERT (model + fast tokenizer) loadable with ``from_pretrained(out_dir)``.

    Args:
        out_dir (str): directory to write into.
        seed (int): seed of the random weights.

    Returns:
        str: ``out_dir``.
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast
    os.makedirs(out_dir, exist_ok=True)
    BertTokenizerFast(vocab={token: i for i, token in enumerate(BERT_VOCAB)},
                      do_lower_case=True).save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(out_dir)
    return out_dir


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Save a randomly initialised mmdet detector.')
    parser.add_argument('config', help='mmdet detector config file (its `model` is built)')
    parser.add_argument('out', help='checkpoint file to write (.pth)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--text-encoder', help='write a tiny BERT here and use it as the '
                        "detector's model.language_model (Grounding DINO)")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    """Build, initialise and save the detector; returns the checkpoint path."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.text_encoder:
        cfg.model.language_model.name = build_tiny_bert(args.text_encoder, args.seed)
    torch.manual_seed(args.seed)
    detector = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights reports every parameter at INFO
    try:
        detector.init_weights()
    finally:
        logger.setLevel(level)
    classes = (cfg.get('metainfo', None) or {}).get('classes', None)
    meta = dict(seed=args.seed, config=osp.abspath(args.config))
    if classes is not None:
        meta['dataset_meta'] = dict(classes=tuple(classes))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_checkpoint(dict(state_dict=weights_to_cpu(detector.state_dict()), meta=meta), args.out)
    count = sum(p.numel() for p in detector.parameters())
    print(f'{type(detector).__name__} with {count} random parameters saved to {args.out}')
    return args.out


if __name__ == '__main__':
    main()
