# Copyright (c) finers_mm contributors. All rights reserved.
"""Save a freshly built, randomly initialised mmdet detector as a checkpoint (no download).

Example (from the repository root)::

    python projects/reasoning_proposer/tools/build_tiny_detector.py \
        projects/reasoning_proposer/configs/rtmdet_tiny_1cls.py work_dirs/tiny_models/rtmdet_tiny_1cls.pth

The weights are random (``torch.manual_seed(seed)``, then the detector's ``init_weights``; the
config must name no pretrained download); the checkpoint holds ``state_dict`` and
``meta.dataset_meta.classes`` (the config's ``metainfo.classes``), like one saved by a runner.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))

import finers_mm  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu  # noqa: E402

from finers_mm.registry import MODELS  # noqa: E402


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description='Save a randomly initialised mmdet detector.')
    parser.add_argument('config', help='mmdet detector config file (its `model` is built)')
    parser.add_argument('out', help='checkpoint file to write (.pth)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    args = parser.parse_args(argv)
    init_default_scope('finers_mm')
    cfg = Config.fromfile(args.config)
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    classes = (cfg.get('metainfo', None) or {}).get('classes', None)
    meta = dict(dataset_meta=dict(classes=list(classes)) if classes else {}, seed=args.seed)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_checkpoint(dict(state_dict=weights_to_cpu(model.state_dict()), meta=meta), args.out)
    params = sum(p.numel() for p in model.parameters())
    print(f'{type(model).__name__} ({params / 1e6:.2f} M parameters, random, seed {args.seed}) '
          f'-> {args.out}')
    return args.out


if __name__ == '__main__':
    main()
