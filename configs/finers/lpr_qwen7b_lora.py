# LPR GRPO with LoRA on the 7B model, for one 24-40 GB card: LoRA r=64 on every linear layer
# of the language model, gradient checkpointing, a free reference policy (the adapter disabled, no
# frozen copy in memory), 4 samples per prompt and 512 new tokens to bound the rollout's memory, a
# LoRA-sized learning rate. Not measured on such a card here (this project's CI has no GPU).
#   python tools/train.py configs/finers/lpr_qwen7b_lora.py
_base_ = ['./lpr_qwen7b.py']

model = dict(
    vlm=dict(lora=dict(r=64, alpha=128, dropout=0.05), generation=dict(max_new_tokens=512)))
custom_hooks = [dict(type='GRPOHook', reward=_base_.lpr_reward, num_generations=4)]
# peft keeps the adapters in fp32 under the base's bf16 (get_peft_model's autocast_adapter_dtype):
# the schedule's KahanAdamW steps them exactly as torch's AdamW (no compensation needed)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
