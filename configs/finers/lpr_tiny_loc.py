# The refiner's (LPR) GRPO of the quick start's locating chain, from the supervised refiner that
# tools/misc/train_tiny_locator.py ships (tiny_cpu.py's `tiny_locator_weights`: a tiny Qwen3-VL,
# 0..1000 coordinates), in the locating frames (`tiny_loc_frames`: 256 x 256 crops); lpr_tiny.py's
# reward and schedule.
#   python tools/train.py configs/finers/lpr_tiny_loc.py \
#       --cfg-options train_dataloader.dataset.data_root=DATA/
_base_ = ['./lpr_tiny.py']

frames = _base_.tiny_loc_frames
# the pipelines in these frames (tiny_cpu.py's `tiny_loc_sizes`)
train_pipeline = [
    dict(step, **_base_.tiny_loc_sizes.get(step['type'], {})) for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, **_base_.tiny_loc_sizes.get(step['type'], {})) for step in _base_.test_pipeline
]
model = dict(frame_size=frames['refiner_size'],
             vlm=dict(type='Qwen3VLAdapter', pretrained=_base_.tiny_locator_weights + '/refiner'))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
