# The tiny FineRS chain of finers_tiny_test.py with a SAM 2 mask head instead of SAM: only the
# model.mask_head block differs. 'tiny' is a 256-pixel SAM 2.1 with random weights (tests only).
# The real ones are a sam2 package config name and Meta's LOCAL checkpoint (nothing is downloaded),
# e.g. the FineRS authors' sam2_hiera_large:
#   mask_head=dict(_delete_=True, type='SAM2MaskHead', config='configs/sam2/sam2_hiera_l.yaml',
#                  checkpoint='checkpoints/sam2_hiera_large.pt')
# or SAM 2.1: config='configs/sam2.1/sam2.1_hiera_l.yaml', checkpoint='.../sam2.1_hiera_large.pt'.
# segment-anything stays one block away: type='SAMMaskHead', model_type='vit_h',
# checkpoint='checkpoints/sam_vit_h_4b8939.pth' (or vit_b / vit_l).
#   python tools/test.py configs/finers/finers_tiny_test_sam2.py
_base_ = ['./finers_tiny_test.py']

model = dict(mask_head=dict(_delete_=True, type='SAM2MaskHead', config='tiny'))
