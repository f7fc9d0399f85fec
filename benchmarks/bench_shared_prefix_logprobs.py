# Copyright (c) finers_mm contributors. All rights reserved.
"""The GRPO log-prob forwards with each prompt computed once per group (``share_prompt=True``,
:mod:`finers_mm.models.vlm.shared_prefix`) against one prompt copy per completion (``False``).

One group: 1 prompt (one image + a question) and n = ``--n`` completions of exactly
``--completion-tokens`` random tokens, on the tiny Qwen2.5-VL (random weights, float32, sdpa, CPU,
``--threads`` torch threads) with Qwen2.5-VL-7B's image budget (min/max pixels 3136 / 12845056),
so the prompt has the real 7B token count: GSE 1920x1080 -> 2,691 image tokens, LPR 512x512 ->
324. Both paths run in the same process, alternately, through ``Qwen25VLAdapter
.completion_logprobs`` (the call GRPO's reference and policy make); the median of ``--repeats``
after one warm-up is printed for:

- ``ref``: the reference/old-policy log-probs (``torch.no_grad()``);
- ``policy``: the policy's log-probs and entropies, a loss and its backward.

and the ratio unshared / shared of each (> 1: sharing is faster). The largest difference of the
log-probs between the two paths is printed as a check (the tests hold it to 1e-5).

    python benchmarks/bench_shared_prefix_logprobs.py [--n 8] [--completion-tokens 256] \
        [--repeats 3] [--threads 1] [--quick]

Measured (2-core shared CPU box, 1 thread, n = 8, 256-token completions, ``--repeats 3``)::

    case  prompt  ref unsh   ref sh  x ref  pol unsh   pol sh  x pol  max|dlogp|
    gse     2755    3.054s   0.447s   6.83    8.537s   1.236s   6.91    4.77e-07
    lpr      388    0.163s   0.057s   2.85    0.427s   0.151s   2.82    9.54e-07

GSE: the 8 prompt copies (8 x 2,755 tokens, 8 x 10,764 patches through the vision tower) were
~90 % of the work; shared, the prompt runs once and the 8 x 256 completion tokens attend to its
keys/values. LPR's prompt is short next to 8 x 256 completion tokens, so less is saved. On the
7B model the ratios should be of the same order (prompt tokens dominate the FLOPs the same way);
not measured on a GPU here.
"""
import argparse
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Optional

import numpy as np
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from timing import median_time  # noqa: E402

from finers_mm.registry import MODELS  # noqa: E402
from finers_mm.testing.tiny_models import build_tiny_models  # noqa: E402

#: Qwen2.5-VL-7B-Instruct's processor budget (preprocessor_config.json)
MIN_PIXELS, MAX_PIXELS = 3136, 12845056
#: (name, image height, image width): the GSE explorer's frame and the LPR refiner's crop
CASES = [('gse', 1080, 1920), ('lpr', 512, 512)]
QUICK_CASES = [('gse', 112, 168), ('lpr', 56, 56)]
PROMPT = ('Find the small object the question asks about and answer with the region that '
          'contains it. Question: where is the small red flag next to the bridge?')


def measure(adapters: Dict[bool, object], height: int, width: int, n: int, tokens: int,
            repeats: int) -> Dict[str, float]:
    """Times of both paths on one group, and their largest log-prob difference.

    Args:
        adapters (dict[bool, Qwen25VLAdapter]): the adapter with ``share_prompt`` False / True
            (the same weights).
        height (int): image height in pixels.
        width (int): image width in pixels.
        n (int): completions in the group.
        tokens (int): tokens per completion.
        repeats (int): timed runs per measurement.

    Returns:
        dict[str, float]: ``prompt_tokens``, seconds ``{ref,policy}_{unshared,shared}``,
        ``{ref,policy}_ratio`` (unshared / shared) and ``max_abs_diff``.
    """
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    inputs = adapters[True].build_inputs([image], [PROMPT])
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 200, (n, tokens), generator=generator)
    mask = torch.ones_like(ids)
    out = dict(prompt_tokens=float(inputs['input_ids'].shape[1]))

    def ref(share: bool):
        with torch.no_grad():
            return adapters[share].completion_logprobs(inputs, ids, mask)

    def policy(share: bool):
        adapter = adapters[share]
        logps, entropies = adapter.completion_logprobs(inputs, ids, mask, return_entropy=True)
        (-(logps.exp() * mask).mean() - 1e-3 * entropies.mean()).backward()
        adapter.model.zero_grad(set_to_none=True)

    out['max_abs_diff'] = float((ref(False) - ref(True)).abs().max())
    for name, fn in (('ref', ref), ('policy', policy)):
        for share in (False, True):
            out[f'{name}_{"shared" if share else "unshared"}'] = median_time(
                lambda: fn(share), repeats)
        out[f'{name}_ratio'] = out[f'{name}_unshared'] / out[f'{name}_shared']
    return out


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=8, help='completions per prompt')
    parser.add_argument('--completion-tokens', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--quick', action='store_true',
                        help='tiny images, n = 3, 8 tokens, 1 repeat: checks the script runs')
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.completion_tokens, args.repeats = 3, 8, 1
    torch.set_num_threads(args.threads)
    paths = build_tiny_models(osp.join(tempfile.gettempdir(), 'finers_bench_tiny_models'))
    adapters = {share: MODELS.build(dict(type='Qwen25VLAdapter', pretrained=paths['qwen2_5_vl'],
                                         min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
                                         share_prompt=share))
                for share in (False, True)}
    adapters[True].model.load_state_dict(adapters[False].model.state_dict())
    print(f'tiny Qwen2.5-VL, CPU, {args.threads} thread(s), n = {args.n}, '
          f'{args.completion_tokens}-token completions, median of {args.repeats}')
    print(f'{"case":<5} {"prompt":>6} {"ref unsh":>9} {"ref sh":>8} {"x ref":>6} '
          f'{"pol unsh":>9} {"pol sh":>8} {"x pol":>6} {"max|dlogp|":>11}')
    results = {}
    for name, height, width in (QUICK_CASES if args.quick else CASES):
        r = measure(adapters, height, width, args.n, args.completion_tokens, args.repeats)
        results[name] = r
        print(f'{name:<5} {int(r["prompt_tokens"]):>6} {r["ref_unshared"]:>8.3f}s '
              f'{r["ref_shared"]:>7.3f}s {r["ref_ratio"]:>6.2f} {r["policy_unshared"]:>8.3f}s '
              f'{r["policy_shared"]:>7.3f}s {r["policy_ratio"]:>6.2f} {r["max_abs_diff"]:>11.2e}')
    return results


if __name__ == '__main__':
    main()
