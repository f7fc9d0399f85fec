# LPR (LocalRefiner), trained with GRPO: the Qwen2.5-VL policy of qwen25vl_grpo.py, the authors'
# LPR reward and GRPO's sampling. Its frame (the crop resized to `frames.refiner_size`) comes from
# the dataset config's `frames`.
_base_ = ['./qwen25vl_grpo.py']

model = dict(type='LocalRefiner')

# the authors' LPR reward (max 6): each term 0/1, summed; the terms' defaults are the authors'
# thresholds (box IoU > 0.5, box L1 < 10 px and points < 100 px in the LPR frame)
lpr_reward = dict(
    type='CompositeReward',
    terms=[
        dict(type='ThinkFormatReward'),
        dict(type='JsonFormatReward'),
        dict(type='BoxIoUReward'),
        dict(type='BoxL1Reward'),
        dict(type='PointsReward'),
        dict(type='AnswerReward'),
    ])
# GRPOHook's defaults are the authors' group: 8 samples per prompt at temperature 1.0, top_p 1.0
custom_hooks = [dict(type='GRPOHook', reward=lpr_reward)]
