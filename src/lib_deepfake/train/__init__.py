"""LIB training (extra ``[train]``): the official recipe and a fixed default one, evaluation, resume, DDP.

Entry points (imported from their modules so ``import lib_deepfake.train`` stays light):
``train.config.make_train_config`` / ``TrainConfig``, ``train.fit.fit``, ``train.evaluate.evaluate_checkpoint``.
Modules, one job each: ``lists`` (official list layout), ``data`` (PNG -> uint8 RGB batches), ``augment``
(albumentations 2.x), ``normalize`` (the model's preprocessing), ``losses``, ``balance``, ``schedule``, ``metrics``,
``components`` (model and losses from a config), ``loop`` (one epoch / one evaluation pass), ``evaluate`` (selection
split, ``--eval-only``), ``run_state`` (resume, checkpointed state), ``run_log`` (config.json, metrics.jsonl,
TensorBoard), ``fit`` (setup, epoch loop, end of training), ``ddp``, ``rng``, ``bench`` (step throughput).
"""
