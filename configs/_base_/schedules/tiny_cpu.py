# The CPU block of every tiny run (tests, the quick start, the tiny demo): the tiny models, the
# bundled synthetic data, a CPU runtime and an fp32 AdamW schedule tuned for a tiny model trained
# for minutes on 2 CPU cores. It inherits the FineRS-4k dataset and the default runtime, so a tiny
# config lists it in their place:
#   _base_ = ['../_base_/models/lpr_qwen25vl.py', '../_base_/schedules/tiny_cpu.py']
_base_ = ['../datasets/finers4k.py', '../default_runtime.py']

# where tools/misc/build_tiny_models.py writes the tiny models; the tiny Qwen2.5-VL every tiny run
# loads (a model's `vlm=dict(tiny_vlm, _delete_=True, ...)` replaces the 7B one)
tiny_models = 'work_dirs/tiny_models'
tiny_vlm = dict(type='Qwen25VLAdapter', pretrained=tiny_models + '/qwen2_5_vl', dtype='float32')

# The locating chain (configs/finers/*_tiny_loc*.py, issue 16): a tiny Qwen3-VL at the locator's
# width (finers_mm.testing.tiny_models.build_tiny_qwen3_locator; its processor sees up to 12 x 12
# merged 32-px tokens; its tower adds an absolute position table to every patch, without which the
# tiny Qwen2.5-VL locator never learnt where a square is: benchmarks/bench_tiny_vision_probe.py),
# trained by tools/misc/train_tiny_locator.py into `tiny_locator_weights` (shipped in the
# repository with its manifest; what they locate: benchmarks/bench_tiny_localisation.py, the
# README). Its frames suit the quick start's 960 x 540 synthetic images
# (the paper's frames stay in configs/_base_/datasets/finers4k.py): the explorer sees the image
# unresized (512 x 288 after the processor: a 12-px XS object is ~6 px, under half a 16-px patch),
# answers a 128 x 128 region; the refiner sees a 256 x 256 crop (unresized, objects at full size:
# an XS object covers most of a patch). With the paper's frames (1920 x 1080, 512-px crops)
# and the default tiny budget an XS object is a fraction of one merged token in both stages.
tiny_locator = tiny_models + '/qwen3_vl_locator'
tiny_locator_weights = 'finers_mm/data/tiny_locator'
tiny_loc_frames = dict(
    explorer_size=(960, 540), region_size=128, refiner_size=(256, 256), crop_min_side=256)
# the pipeline steps' sizes in those frames, by transform: a locating config maps its pipelines
# with them (`dict(step, **tiny_loc_sizes.get(step['type'], {}))`), so that a plain
# Config.fromfile read has the sizes written out
tiny_loc_sizes = dict(
    ExplorerView=dict(frame_size=tiny_loc_frames['explorer_size'],
                      region_size=tiny_loc_frames['region_size']),
    RefinerCrop=dict(frame_size=tiny_loc_frames['refiner_size'],
                     min_side=tiny_loc_frames['crop_min_side']))

# the 12 bundled records (annotations/train.json, every split); in-process loading (num_workers=0).
# InfiniteSampler: with DefaultSampler, mmengine's iteration-based loop sleeps 2 s at the end of
# every epoch (_InfiniteDataloaderIterator), i.e. every 3 iterations on the 12 bundled records, and
# at every SFT step (16 prompts); an infinite sampler never ends an epoch (and resumes exactly)
data_root = 'finers_mm/data/synthetic/'
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, ann_file='annotations/train.json'))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/train.json'))
test_dataloader = val_dataloader

# fp32 (no AMP on CPU), every optimiser step on one batch; lr 5e-4 for 100 iterations is the tiny
# refiner's GRPO (lpr_tiny.py), the other tiny runs set their own
train_cfg = dict(type='IterBasedTrainLoop', max_iters=100, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
param_scheduler = []
auto_scale_lr = dict(enable=False, base_batch_size=4)

env_cfg = dict(dist_cfg=dict(backend='gloo'))
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=20))
