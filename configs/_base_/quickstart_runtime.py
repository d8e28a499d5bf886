# Runtime of the quick-start configs: CPU-friendly (gloo), short logs,
# one kept checkpoint plus the best one.
_base_ = ['./default_runtime.py']

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=4, max_keep_ckpts=1, save_best='auto'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
