"""Object detection with PaddleDetection (ppdet): PicoDet, PP-YOLOE+, YOLOv3 and users' own configs.

``task.kind: detection``; see docs/detection.md. Modules: ``task`` (the adapter), ``workspace`` (ppdet
config loading and model building), ``data`` (COCO records and ppdet transforms), ``ema``, ``export``,
``translate`` (the ppdet ``LearningRate``/``OptimizerBuilder`` -> our schedule/optim translator),
``synth`` (the synthetic shapes data set), ``ppdet_output`` and ``ppdet_import`` (a save of ppdet's own
trainer read and imported as one committed step: ``warmstart ckpt import --config``).
"""

__all__: list[str] = []
