# The FineRS chain for inference (FineRSDetector): a Qwen2.5-VL explorer (GSE), a Qwen2.5-VL refiner
# (LPR) and a frozen segment-anything mask head.
#
# Every model loads from a LOCAL path; nothing is downloaded. Replace the placeholder paths with
# your checkpoints (Hugging Face `save_pretrained` directories for the VLMs, Meta's state_dict for
# SAM).
# The frame sizes (region_size, the refiner frame, crop_min_side) come from the dataset config's
# `frames`, written once: finers_mm's config loader sets them on the models.
vlm = dict(
    type='Qwen25VLAdapter',  # Qwen2-VL: 'Qwen2VLAdapter'; Qwen3-VL: 'Qwen3VLAdapter'
    dtype='bfloat16',
    attn_implementation='sdpa',
    freeze=True,
    generation=dict(max_new_tokens=1024, do_sample=False))

model = dict(
    type='FineRSDetector',
    explorer=dict(type='GlobalExplorer', vlm=dict(vlm, pretrained='checkpoints/finers_gse_qwen7b')),
    refiner=dict(type='LocalRefiner', vlm=dict(vlm, pretrained='checkpoints/finers_lpr_qwen7b')),
    # the authors used SAM2-hiera-large; segment-anything's vit_b / vit_l / vit_h are one line away
    mask_head=dict(
        type='SAMMaskHead', model_type='vit_h', checkpoint='checkpoints/sam_vit_h_4b8939.pth'))
# the QA answer is the refiner's under protocol 'finers_mm', the explorer's under 'authors' (their
# eval.sh --qa_stage stage1); `model.qa_stage` sets it whatever the protocol
# tools/dist_test.sh: the chain is frozen and DDP refuses a module without a trainable parameter;
# mmengine's separate wrapper puts frozen sub-models on the device and wraps only trainable ones
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False)
