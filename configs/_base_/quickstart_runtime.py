# Runtime of the quick-start configs: CPU-friendly (gloo), short logs,
# one kept checkpoint plus the best one. These are choices for the CPU
# demo (make demo); your own configs inherit ./default_runtime.py instead.
_base_ = ['./default_runtime.py']

default_hooks = dict(
    # ignore_last=False: the last iteration of every epoch is logged too,
    # so train.log shows where each epoch ended.
    logger=dict(interval=5, ignore_last=False),
    checkpoint=dict(interval=4, max_keep_ckpts=1, save_best='auto'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
