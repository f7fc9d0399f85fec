# FineRS with a text-grounded mmdet refiner: as finers_tiny_mmdet_refiner.py, with a tiny random
# Grounding DINO (tiny local BERT text encoder) that reads the question as its text prompt. Build
# its weights and text encoder (projects/mmdet_refiner/README.md):
#   python projects/mmdet_refiner/tools/build_tiny_detector.py \
#       projects/mmdet_refiner/configs/grounding-dino_tiny.py \
#       work_dirs/tiny_models/mmdet_refiner/grounding-dino_tiny.pth \
#       --text-encoder work_dirs/tiny_models/mmdet_refiner/bert_tiny
_base_ = ['./finers_tiny_mmdet_refiner.py']

model = dict(
    refiner=dict(
        detector='projects/mmdet_refiner/configs/grounding-dino_tiny.py',
        checkpoint='work_dirs/tiny_models/mmdet_refiner/grounding-dino_tiny.pth',
        detector_overrides={'language_model.name': 'work_dirs/tiny_models/mmdet_refiner/bert_tiny'},
        selection='text',  # the question is the text prompt, one entity
        text_prompt='{question}'))
