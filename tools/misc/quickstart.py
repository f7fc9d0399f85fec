# Copyright (c) finers_mm contributors. All rights reserved.
"""The embedded default main job: tiny local models on a bundled synthetic image, no downloads.

Builds (once, cached) the tiny Qwen2.5-VL, Qwen2-VL and SAM of :mod:`finers_mm.utils.tiny_models`,
asks the Qwen2.5-VL the first bundled question about its high-resolution image, prompts SAM with the
object's GT box, and writes the completion, the mask and an overlay. The weights are random, so the
completion is gibberish and the mask arbitrary: this run proves the stack end to end.

Example::

    python tools/misc/quickstart.py --out-dir work_dirs/quickstart
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from finers_mm.structures.masks import polygon_bbox  # noqa: E402
from finers_mm.utils.tiny_models import build_sam_from_config, build_tiny_models  # noqa: E402

BUNDLED = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'finers_mm', 'data',
                   'synthetic')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run the tiny embedded default end to end')
    parser.add_argument('--out-dir', default='work_dirs/quickstart', help='where outputs go')
    parser.add_argument('--models-dir', default='work_dirs/tiny_models', help='tiny model cache')
    parser.add_argument('--seed', type=int, default=0, help='seed of the tiny models')
    parser.add_argument('--max-new-tokens', type=int, default=32)
    return parser.parse_args(argv)


def first_bundled_sample():
    """(RGB image array, record) of the first record of the bundled synthetic annotations."""
    with open(osp.join(BUNDLED, 'annotations', 'train.json'), encoding='utf-8') as f:
        record = json.load(f)['annotations'][0]
    image = np.asarray(Image.open(osp.join(BUNDLED, 'images', record['image_path'])).convert('RGB'))
    return image, record


def generate_answer(model_dir: str, image: np.ndarray, question: str, max_new_tokens: int) -> str:
    """One greedy generate of the VLM in ``model_dir`` on (image, question); returns the new text."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True).eval()
    messages = [dict(role='user', content=[dict(type='image', image=Image.fromarray(image)),
                                           dict(type='text', text=question)])]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors='pt')
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.batch_decode(output[:, inputs['input_ids'].shape[1]:], skip_special_tokens=True)[0]


def predict_mask(sam_config: str, sam_checkpoint: str, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """SAM's best-scoring mask, (H, W) bool, for a box prompt in image pixels."""
    from segment_anything import SamPredictor
    with open(sam_config, encoding='utf-8') as f:
        sam = build_sam_from_config(json.load(f), sam_checkpoint).eval()
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(box=box, multimask_output=True)
    return masks[int(np.argmax(scores))]


def main(argv=None) -> None:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    print(f'building (or reusing) the tiny models in {args.models_dir} ...')
    paths = build_tiny_models(args.models_dir, seed=args.seed)
    image, record = first_bundled_sample()
    height, width = image.shape[:2]
    print(f'image {record["image_path"]} ({width}x{height}), question: {record["Q"]}')

    completion = generate_answer(paths['qwen2_5_vl'], image, record['Q'], args.max_new_tokens)
    completion_path = osp.join(args.out_dir, 'completion.txt')
    with open(completion_path, 'w', encoding='utf-8') as f:
        f.write(completion + '\n')

    box = polygon_bbox(record['points'], height, width)
    mask = predict_mask(paths['sam_config'], paths['sam'], image, box)
    mask_path = osp.join(args.out_dir, 'mask.png')
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    overlay = image.copy()
    overlay[mask] = (0.5 * overlay[mask] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
    overlay_path = osp.join(args.out_dir, 'overlay.jpg')
    Image.fromarray(overlay).save(overlay_path)

    print(f'Qwen2.5-VL (random weights) said: {completion!r}')
    print(f'completion: {completion_path}')
    print(f'SAM mask for box {box.tolist()}: {mask_path} ({int(mask.sum())} px), overlay: {overlay_path}')


if __name__ == '__main__':
    main()
