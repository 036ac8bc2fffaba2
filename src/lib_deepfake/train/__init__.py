"""LIB training (extra ``[train]``): the official recipe and a fixed default one, evaluation, resume, DDP.

Entry points (imported from their modules so ``import lib_deepfake.train`` stays light):
``train.config.make_train_config`` / ``TrainConfig``, ``train.fit.fit``, ``train.fit.evaluate_checkpoint``.
Modules, one job each: ``lists`` (official list layout), ``data`` (PNG -> uint8 RGB batches), ``augment``
(albumentations 2.x), ``normalize`` (the model's preprocessing), ``losses``, ``balance``, ``schedule``, ``metrics``,
``loop`` (one epoch / one evaluation), ``ddp``, ``rng``, ``bench`` (step throughput).
"""
