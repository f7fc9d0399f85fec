# GSE (GlobalExplorer), trained with GRPO: the Qwen2.5-VL policy of qwen25vl_grpo.py, the authors'
# GSE reward and GRPO's sampling. Its frame and region size come from the dataset config's `frames`.
# The two retrospective terms (RegionIoUReward, RegionL1Reward) need `best_region` in every training
# record (tools/search_best_region.py with the trained refiner); GRPOHook refuses data without it
# (the authors' release trained with those terms silently at 0).
_base_ = ['./qwen25vl_grpo.py']

model = dict(type='GlobalExplorer')

# the authors' GSE reward (max 7): each term 0/1 (region size 0/0.5/1), summed; the terms'
# defaults are the authors' thresholds (IoU with best_region > 0.9, L1 to it < 20 px in the GSE
# frame, both sides within region_size +- 15 px)
gse_reward = dict(
    type='CompositeReward',
    terms=[
        dict(type='ThinkFormatReward'),
        dict(type='JsonFormatReward'),
        dict(type='RegionIoUReward'),
        dict(type='RegionL1Reward'),
        dict(type='RegionContainsReward'),
        dict(type='RegionSizeReward'),
        dict(type='AnswerReward'),
    ])
# GRPOHook's defaults are the authors' group: 8 samples per prompt at temperature 1.0, top_p 1.0
custom_hooks = [dict(type='GRPOHook', reward=gse_reward)]
