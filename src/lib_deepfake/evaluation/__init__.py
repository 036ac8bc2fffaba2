"""Cross-dataset evaluation of a trained model (``lib-eval``): the LIB paper's table in one command.

- :mod:`~lib_deepfake.evaluation.scoring`: P(fake) of every listed crop of a prepared dataset, from any engine.
- :mod:`~lib_deepfake.evaluation.metrics`: frame AUC/AP/EER, video AUC (mean of frames, identity-max), accuracy at
  the model's threshold.
- :mod:`~lib_deepfake.evaluation.report`: eval.json, eval.md, ROC plots, score files.
- :mod:`~lib_deepfake.evaluation.run`: :func:`~lib_deepfake.evaluation.run.evaluate`, what ``lib-eval`` runs.

Nothing heavy is imported here.
"""
