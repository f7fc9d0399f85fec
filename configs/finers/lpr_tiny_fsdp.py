# lpr_tiny.py sharded as the 7B configs shard (configs/_base_/strategies/fsdp.py), for the CPU
# tests (torchrun, 2 processes, gloo): float32 compute, where the 7B configs compute in bf16.
#   bash tools/dist_train.sh configs/finers/lpr_tiny_fsdp.py 2
_base_ = ['./lpr_tiny.py', '../_base_/strategies/fsdp.py']

strategy = dict(mixed_precision=dict(param_dtype='float32'))
