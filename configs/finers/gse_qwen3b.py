# GSE GRPO with Qwen2.5-VL-3B-Instruct: the 7B config with a smaller model (same settings).
_base_ = ['./gse_qwen7b.py']

model = dict(vlm=dict(pretrained='checkpoints/Qwen2.5-VL-3B-Instruct'))
