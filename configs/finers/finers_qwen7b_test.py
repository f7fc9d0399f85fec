# FineRS-7B on the FineRS-4k test split, as the authors' evaluation runs their released weights
# (README, "Reproduce Table 1 with the released weights"; docs/fidelity.md): their evaluation
# prompts, answers read in frame pixels, the QA answer from GSE scored by their rules, PIL bilinear
# resizes, SAM2 hiera-large masks.
#   python tools/test.py configs/finers/finers_qwen7b_test.py     (weights from the paths below)
#   bash tools/dist_test.sh configs/finers/finers_qwen7b_test.py none 8
# Put the GSE and LPR checkpoints (Hugging Face directories) and SAM 2's sam2_hiera_large.pt at the
# paths below (or override them) and FineRS-4k under data/FineRS-4k/
# (configs/_base_/datasets/finers4k.py). Paper (test split, percent): gIoU 55.1, cIoU 46.5,
# MVQA 83.3, OVQA 56.7, XXS gIoU 47.2. `protocol = 'finers_mm'` runs the same weights by ours.
_base_ = [
    '../_base_/models/finers_qwen25vl.py', '../_base_/datasets/finers4k.py',
    '../_base_/default_runtime.py'
]

# inference only
train_dataloader = train_cfg = optim_wrapper = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)

protocol = 'authors'
model = dict(
    explorer=dict(vlm=dict(pretrained='checkpoints/finers_gse_qwen7b')),
    refiner=dict(vlm=dict(pretrained='checkpoints/finers_lpr_qwen7b')),
    # the authors' masks: SAM 2 hiera-large (sam2 package config, local weights)
    mask_head=dict(_delete_=True, type='SAM2MaskHead', config='configs/sam2/sam2_hiera_l.yaml',
                   checkpoint='checkpoints/sam2_hiera_large.pt'))
default_hooks = dict(logger=dict(interval=50))
