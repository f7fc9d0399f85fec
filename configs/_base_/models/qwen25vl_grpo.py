# The policy both FineRS stages train with GRPO, with the authors' settings (METHOD.md, "GRPO"):
# Qwen2.5-VL-7B-Instruct, full fine-tune in bf16 with gradient checkpointing, answers of up to 1024
# new tokens (the rollout's budget too: GRPOHook samples with the VLM's max_new_tokens). The GRPO
# loss is GRPOLoss with its defaults, the authors' (clip 0.2, k3 KL 5e-3 clamped to 10, entropy
# 1e-3; the aggregation by the config's protocol): set `grpo_loss=dict(kl_coef=0.0)` to change one. The stage bases
# (gse_qwen25vl.py, lpr_qwen25vl.py) add the model type, the reward and the GRPO hook.
# `pretrained` is a LOCAL Hugging Face directory; nothing is downloaded.
model = dict(
    vlm=dict(
        type='Qwen25VLAdapter',  # Qwen2-VL: 'Qwen2VLAdapter'; Qwen3-VL: 'Qwen3VLAdapter'
        pretrained='checkpoints/Qwen2.5-VL-7B-Instruct',
        dtype='bfloat16',
        attn_implementation='sdpa',
        gradient_checkpointing=True,
        generation=dict(max_new_tokens=1024)),
    train_mode='grpo')
