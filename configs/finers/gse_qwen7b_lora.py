# GSE GRPO with LoRA on the 7B model, for one 24-40 GB card: as lpr_qwen7b_lora.py (LoRA r=64,
# gradient checkpointing, the adapter disabled as the reference policy, 4 samples per prompt, 512
# new tokens, a LoRA-sized learning rate). Not measured on such a card here (no GPU in CI).
#   python tools/train.py configs/finers/gse_qwen7b_lora.py
_base_ = ['./gse_qwen7b.py']

model = dict(
    vlm=dict(lora=dict(r=64, alpha=128, dropout=0.05), generation=dict(max_new_tokens=512)))
custom_hooks = [dict(type='GRPOHook', reward=_base_.gse_reward, num_generations=4)]
# One card, no sharding: mmengine's plain Runner (the full fine-tune's FSDP strategy does not
# apply) with the schedule's bf16 autocast (configs/_base_/schedules/grpo_200it.py).
# peft keeps the adapters in fp32 under the base's bf16 (get_peft_model's autocast_adapter_dtype):
# KahanAdamW steps them exactly as torch's AdamW (no compensation needed)
runner_type = 'Runner'
strategy = None
optim_wrapper = dict(
    _delete_=True, type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='KahanAdamW', lr=1e-5, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
