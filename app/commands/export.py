"""``warmstart export``: write a task's deployable artifacts from a committed checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from app.commands.common import add_config_args

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained checkpoint for inference (task-specific formats)",
        description="Load the run's latest committed checkpoint (or --from URI[#tag]) into the task's model "
        "and write the task's inference artifacts to --out.",
    )
    add_config_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--from",
        dest="source",
        metavar="URI",
        help="checkpoint to export (default: latest of checkpoint.uri)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import paddle

    from app import signals
    from app.checkpoint import open_source
    from app.config import load_config
    from app.config.paths import resolve_output_dir
    from app.errors import ConfigError
    from app.tasks.base import build_task
    from app.train.start import checkpoint_uri
    from app.train.warmstart import label_change, label_error, load_weights, task_label_space

    cfg = load_config(args.config, args.overrides)
    out_dir = resolve_output_dir("--out", args.out)  # never / or a system folder (docs/config.md)
    with signals.held("while building the task"):  # toolkits take SIGTERM at import (app/signals.py)
        task = build_task(cfg.task, cfg.run.seed, allow_pickle=cfg.init.allow_pickle)
    if not hasattr(task, "export"):
        raise ConfigError(f"task.kind {cfg.task.kind!r} has no export format")
    source = args.source or checkpoint_uri(cfg)
    loaded = open_source(
        source, cfg.store, allow_pickle=cfg.init.allow_pickle, staging_dir=Path(cfg.run.dir) / "export"
    )
    with signals.held("while building the model"), paddle.utils.unique_name.guard():
        model = task.build_model()
    where = loaded.ref.uri if loaded.ref else source
    change = label_change(task_label_space(task), loaded.meta, where, note_unrecorded=False)
    if change is not None:  # the exported dictionary / label list would not be the one trained
        raise label_error(
            change, f"export of {where}", "export with the task options the checkpoint was trained with"
        )
    load_weights(model, loaded.tensors["model"], "weights", cfg.init, where, mapping=False)
    model.eval()
    written = task.export(model, out_dir)
    for path in written:
        print(path)
    log.info("exported step %s of %s to %s", loaded.state.get("step", "?"), source, args.out)
    return 0
