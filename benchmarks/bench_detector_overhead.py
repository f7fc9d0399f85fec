# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSDetector's time per sample against the raw Hugging Face and SAM calls it makes.

Runs in one process on the bundled synthetic samples with the tiny models (built in a temp dir):

1. the whole chain, ``FineRSDetector.test_step`` on a batch, against the same prompts through the
   processor and ``model.generate`` alone (random weights answer invalid text, so the chain stops
   after the explorer: its raw cost is the explorer's generate);
2. each stage on its own: ``LocalRefiner.refine`` on GT windows and ``SAMMaskHead.predict`` on the
   GT boxes, against ``processor`` + ``model.generate`` and ``Sam.forward`` on the same inputs.

Prints ratios (target: <= 1.10, i.e. at most 10 % on top of the work the models must do).

    python benchmarks/bench_detector_overhead.py [--repeats 5] [--batch-size 4]
"""
import argparse
import os.path as osp
import sys
import tempfile

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from timing import median_time  # noqa: E402

from finers_mm.models.stages import Query  # noqa: E402
from finers_mm.registry import DATASETS, MODELS  # noqa: E402
from finers_mm.structures import crop_to_frame, crop_window_from_region, image_size  # noqa: E402
from finers_mm.structures.vocabulary import EXPLORER, REFINER  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_models  # noqa: E402


def raw_generate(vlm, images, prompts):
    """The processor and ``model.generate`` alone, with the adapter's generation settings."""
    conversations = [[dict(role='user', content=[dict(type='image'), dict(type='text', text=p)])]
                     for p in prompts]
    texts = vlm.processor.apply_chat_template(conversations, add_generation_prompt=True,
                                              tokenize=False)
    inputs = vlm.processor(text=texts, images=list(images), padding=True, padding_side='left',
                           return_tensors='pt')
    with torch.no_grad():
        return vlm.model.generate(**inputs, max_new_tokens=vlm.generation['max_new_tokens'],
                                  do_sample=False)


def raw_sam(mask_head, crops, boxes):
    """``Sam.forward`` on the crops with their boxes, prepared as SamPredictor does."""
    sam, transform = mask_head.sam, mask_head.transform
    records = []
    for crop, box in zip(crops, boxes):
        image = torch.as_tensor(transform.apply_image(crop)).permute(2, 0, 1).contiguous()
        records.append(dict(image=image, original_size=crop.shape[:2],
                            boxes=torch.as_tensor(transform.apply_boxes(box[None], crop.shape[:2]),
                                                  dtype=torch.float)))
    with torch.no_grad():
        return sam(records, multimask_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch-size', type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    init_default_scope('finers_mm')

    paths = build_tiny_models(osp.join(tempfile.gettempdir(), 'finers_bench_tiny_models'))
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'finers', 'finers_tiny_test.py'))
    cfg.merge_from_dict({
        'model.explorer.vlm.pretrained': paths['qwen2_5_vl'],
        'model.refiner.vlm.pretrained': paths['qwen2_5_vl'],
        'model.mask_head.config': paths['sam_config'],
        'model.mask_head.checkpoint': paths['sam'],
        'test_dataloader.dataset.data_root': osp.join(REPO_ROOT, 'finers_mm/data/synthetic/')})
    detector = MODELS.build(cfg.model).eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(args.batch_size)])
    samples = [dataset.get_data_info(i) for i in range(args.batch_size)]
    views = [view.numpy() for view in batch['inputs']['explorer']]
    originals = [image.numpy() for image in batch['inputs']['original']]
    sizes = [(s['width'], s['height']) for s in samples]
    windows = [crop_window_from_region(s['gt_bbox'], size, detector.crop_min_side)
               for s, size in zip(samples, sizes)]
    crops = [image[w[1]:w[3], w[0]:w[2]] for image, w in zip(originals, windows)]
    boxes = np.stack([s['gt_bbox'] - np.tile(w[:2], 2) for s, w in zip(samples, windows)])
    refiner_views = [crop_to_frame(image, w, detector.refiner.frame_size)
                     for image, w in zip(originals, windows)]
    queries = [Query(s['question'], s['question_type'], s['options']) for s in samples]
    prompts = {stage: [model.build_prompt(q, image_size(v))
                       for q, v in zip(queries, stage_views)]
               for stage, model, stage_views in ((EXPLORER, detector.explorer, views),
                                                 (REFINER, detector.refiner, refiner_views))}

    rows = [
        ('FineRSDetector.test_step', lambda: detector.test_step(batch),
         'explorer generate (raw)', lambda: raw_generate(detector.explorer.vlm, views,
                                                         prompts[EXPLORER])),
        ('LocalRefiner.refine', lambda: detector.refiner.refine(originals, windows, queries),
         'refiner generate (raw)', lambda: raw_generate(detector.refiner.vlm, refiner_views,
                                                        prompts[REFINER])),
        ('SAMMaskHead.predict', lambda: detector.mask_head.predict(crops, boxes, None),
         'Sam.forward (raw)', lambda: raw_sam(detector.mask_head, crops, boxes)),
    ]
    print(f'batch of {args.batch_size} bundled samples, tiny models, CPU, 1 thread, median of '
          f'{args.repeats}')
    for ours_name, ours, raw_name, raw in rows:
        ours_time, raw_time = median_time(ours, args.repeats), median_time(raw, args.repeats)
        print(f'{ours_name:26s} {1000 * ours_time / args.batch_size:8.1f} ms/sample   '
              f'{raw_name:26s} {1000 * raw_time / args.batch_size:8.1f} ms/sample   '
              f'ratio {ours_time / raw_time:5.2f} (target <= 1.10)')


if __name__ == '__main__':
    main()
