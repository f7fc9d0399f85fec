# The tiny chain with every multi-hypothesis inference mode on (FineRSDetector's
# `multi_hypothesis`; off in finers_tiny_test.py, the paper's single-region chain):
# 4 explorer regions per question by beam search (the explorer's `multi_region`; 'sample' samples
# them instead), all refined in one batch, the zoomed second refinement on a window sized to the
# predicted object, the tiled fallback when the explorer gives no usable region, and the kept
# hypothesis chosen by exp(refiner mean token log-prob) x SAM's predicted IoU.
#   python tools/test.py configs/finers/finers_tiny_test_multihyp.py
_base_ = ['./finers_tiny_test.py']

model = dict(
    explorer=dict(multi_region='beam'),
    multi_hypothesis=dict(
        num_regions=4,
        fusion='product',
        adaptive_window=dict(context_factor=4.0, min_side=128, max_side=512),
        tiled_fallback=dict(tile_size=512, overlap_ratio=0.2)))
