# Retrospective best-region search (tools/search_best_region.py) with the tiny local refiner on the
# bundled synthetic data, on CPU. Build the tiny models first (the quick start does):
#   python tools/misc/build_tiny_models.py work_dirs/tiny_models
#   python tools/search_best_region.py configs/finers/region_search_tiny.py none \
#       finers_mm/data/synthetic/annotations/train.json \
#       --out work_dirs/region_search_tiny/train.json
# The weights are random: expect IoU 0 in every window, so every best_region is the centred region.
#
# A real search is the same three parts: the trained LPR's model config (a LocalRefiner, or a
# FineRSDetector config whose `refiner` is used), the dataset config's `frames`, and a
# `region_search` section (every key optional; tools/search_best_region.py lists the defaults:
# num_candidates=8, rule='random', seed=0, batch_size=1, save_interval=16, dist_timeout=86400):
#   _base_ = ['./lpr_qwen7b.py']      # or ['./finers_qwen7b_test.py']
#   region_search = dict(num_candidates=8, rule='random', seed=0, batch_size=2, save_interval=64)
#   bash tools/dist_launch.sh 8 tools/search_best_region.py CONFIG LPR_CKPT \
#       data/FineRS-4k/annotations/train.json --out data/FineRS-4k/annotations/train_best.json
_base_ = ['./finers_tiny_test.py']

# the tiny chain's refiner alone
model = dict(_base_.model.refiner, _delete_=True)

# 4 candidate regions per record, 4 records (16 windows) per refiner call, state saved every 4
region_search = dict(num_candidates=4, rule='random', seed=0, batch_size=4, save_interval=4)
