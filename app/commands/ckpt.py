"""``warmstart ckpt``: list, show, verify, gc, import and promote checkpoints under a store URI.

Store options (endpoint, region, addressing style) come from the documented WARMSTART_S3_* environment
variables; credentials from the SDK's own chain. The work is done by :mod:`app.checkpoint`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from app.checkpoint import catalog, reader, retention
from app.checkpoint.catalog import StepStatus
from app.checkpoint.config import CheckpointConfig, check_policy
from app.checkpoint.layout import META, TRAINER_STATE, CheckpointRef, check_tag_name
from app.checkpoint.pdparams import IMPORT_HINT, import_pdparams
from app.checkpoint.report import format_metrics, format_table, human_size, show_lines
from app.checkpoint.source import local_copy, resolve_ref, split_tag
from app.checkpoint.tags import promote, tagged_steps
from app.checkpoint.writer import read_started
from app.commands.common import add_config_args
from app.config import load_config
from app.config.paths import local_path_of, resolve_output_dir
from app.errors import EXIT_CHECKPOINT, EXIT_OK, CheckpointError, ConfigError
from app.store import open_store
from app.store.base import ObjectStore

__all__ = ["register"]

log = logging.getLogger(__name__)


def _store_config():  # noqa: ANN202  (StoreConfig)
    return load_config(None).store


def _open(uri: str, *, writes: str | None = None) -> ObjectStore:
    """The store at ``uri``; ``writes`` names the argument when the command writes or deletes there, so a
    local one is held to the output-folder rule (never / or a system folder: docs/config.md)."""
    local = local_path_of(uri) if writes else None
    if local is not None:
        resolve_output_dir(writes, local)
    return open_store(uri, _store_config())


@contextmanager
def _staging() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="warmstart-ckpt-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pick(store: ObjectStore, tag: str | None, step: int | None) -> CheckpointRef:
    """The checkpoint a command acts on: ``--step``, ``#tag``, the folder itself, or the latest."""
    if step is not None:
        for status in catalog.scan(store):
            if status.step == step and status.ref is not None:
                return status.ref
            if status.step == step:  # a step folder exists but is torn: say why
                raise CheckpointError(
                    f"step {step} is not a committed checkpoint under {store.uri}: {status.problem}"
                )
        raise CheckpointError(f"step {step} is not a committed checkpoint under {store.uri}")
    ref = resolve_ref(store, tag)
    if ref is None:
        raise CheckpointError(f"no committed checkpoint under {store.uri}", hint="check the URI")
    return ref


# -- ls ------------------------------------------------------------------------------------------
def _metrics_cell(store: ObjectStore, ref: CheckpointRef) -> str:
    try:
        return format_metrics(reader.read_json_file(store, ref, META).get("metrics"))
    except CheckpointError:
        return f"({META} unreadable)"


def _ls_row(
    store: ObjectStore, status: StepStatus, tags: list[str], verify: bool, staging: Path
) -> list[str]:
    when, metrics, state = "-", "-", f"TORN: {status.problem}"
    if status.unusable:
        state = f"UNUSABLE (kept): {status.problem}"
    elif status.manifest is not None and status.ref is not None:
        when = status.manifest.created_utc.replace("T", " ").rstrip("Z")
        metrics = _metrics_cell(store, status.ref)
        state = "committed" if status.intact else f"CORRUPT: {status.problem}"
        if verify and status.intact:
            try:
                reader.verify(store, status.ref, staging)
                state = "verified"
            except CheckpointError as exc:
                state = f"CORRUPT: {exc.message}"
    else:
        marker = read_started(store, status.key) or {}
        when = str(marker.get("utc", "-")).replace("T", " ").rstrip("Z")
    return [str(status.step), when, human_size(status.size), state, ",".join(tags) or "-", metrics]


def cmd_ls(args: argparse.Namespace) -> int:
    store = _open(args.uri)
    statuses = catalog.scan(store)
    if not statuses:
        print(f"no checkpoints under {store.uri}")
        return EXIT_OK
    tags = tagged_steps(store)
    with _staging() as staging:
        rows = [_ls_row(store, s, tags.get(s.step, []), args.verify, staging) for s in reversed(statuses)]
    print(format_table(["STEP", "TIME (UTC)", "SIZE", "STATUS", "TAGS", "METRICS"], rows))
    bad = [r for r in rows if r[3].startswith(("CORRUPT", "UNUSABLE"))]
    return EXIT_CHECKPOINT if args.verify and bad else EXIT_OK


# -- show / verify ---------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    base, tag = split_tag(args.uri)
    store = _open(base)
    ref = _pick(store, tag, args.step)
    manifest = reader.read_manifest(store, ref)
    meta = reader.read_json_file(store, ref, META)
    state = reader.read_json_file(store, ref, TRAINER_STATE)
    tags = tagged_steps(store).get(ref.step, []) if ref.key else []
    print("\n".join(show_lines(ref.uri, manifest, ref.manifest_sha256, meta, state, tags)))
    return EXIT_OK


def _verify_one(store: ObjectStore, ref: CheckpointRef, staging: Path) -> bool:
    try:
        manifest = reader.verify(store, ref, staging)
    except CheckpointError as exc:
        print(f"step {ref.step}: FAILED: {exc.message}")
        return False
    print(
        f"step {ref.step}: OK ({len(manifest.files)} files, {human_size(manifest.total_size)}, sha256 verified)"
    )
    return True


def cmd_verify(args: argparse.Namespace) -> int:
    base, tag = split_tag(args.uri)
    store = _open(base)
    unusable: list[StepStatus] = []
    if args.step is not None or tag or store.exists("manifest.json"):
        refs = [_pick(store, tag, args.step)]
    else:
        statuses = [s for s in catalog.scan(store) if s.has_manifest]
        if not statuses:
            raise CheckpointError(f"no committed checkpoint under {store.uri}", hint="check the URI")
        unusable = [s for s in statuses if s.unusable]
        refs = [s.ref for s in statuses if s.ref is not None]
    for status in unusable:  # reported, never silently passed over
        print(f"step {status.step}: UNUSABLE (kept): {status.problem}")
    with _staging() as staging:
        results = [_verify_one(store, ref, staging) for ref in refs]
    return EXIT_OK if all(results) and not unusable else EXIT_CHECKPOINT


# -- gc ------------------------------------------------------------------------------------------
_GC_FLAGS = {
    "keep_last": "--keep-last",
    "keep_best": "--keep-best",
    "best_metric": "--metric",
    "best_mode": "--mode",
    "leftover_minutes": "--leftover-minutes",
}


def _gc_config(args: argparse.Namespace) -> CheckpointConfig:
    """The config's retention policy with the flags applied, validated like the config (exit 2)."""
    cfg = load_config(None).checkpoint
    updates = {field: getattr(args, flag[2:].replace("-", "_")) for field, flag in _GC_FLAGS.items()}
    cfg = replace(cfg, **{k: v for k, v in updates.items() if v is not None})
    check_policy(cfg, {field: flag for field, flag in _GC_FLAGS.items() if updates[field] is not None})
    if args.keep_best and not cfg.best_metric:
        raise ConfigError("--keep-best needs --metric NAME (the meta.json metric that ranks checkpoints)")
    return cfg


def _policy_text(cfg: CheckpointConfig) -> str:
    """What the retention rule is; keep_best is only mentioned when a metric makes it mean something."""
    text = f"keep_last={cfg.keep_last if cfg.keep_last is not None else 'all'}"
    if cfg.keep_best and cfg.best_metric:
        text += f", keep_best={cfg.keep_best} by {cfg.best_metric} ({cfg.best_mode})"
    return text


def cmd_gc(args: argparse.Namespace) -> int:
    cfg = _gc_config(args)
    store = _open(args.uri, writes="URI")
    if not cfg.best_metric:  # best-K means nothing without a metric: keep only what keep_last says
        cfg = replace(cfg, keep_best=0)
    plan = retention.collect(store, cfg)
    verb = "would delete" if args.dry_run else "delete"
    for step in plan.keep:
        print(f"keep    step {step} ({', '.join(plan.reasons.get(step, []))})")
    for step in plan.delete:
        print(f"{verb}  step {step} (retention: {_policy_text(cfg)})")
    for step, why in sorted(plan.leftovers.items()):
        print(f"{verb}  step {step} ({why})")
    if args.dry_run:
        print(f"dry run: nothing deleted ({len(plan.delete) + len(plan.leftovers)} would be)")
        return EXIT_OK
    removed = retention.apply(store, plan)
    print(f"deleted {len(removed)} step folder(s)")
    return EXIT_OK


# -- import / promote ------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    if args.config:
        return _import_ppdet_run(args)
    if args.src.endswith(".pdopt"):
        raise ConfigError(
            f"{args.src} is ppdet's optimizer state, not weights",
            hint="to continue the ppdet run, give its .pdparams with --config RUN.yaml (docs/detection.md)",
        )
    store = _open(args.dest, writes="DEST_URI")
    with _staging() as staging:
        path, _ = local_copy(args.src, _store_config(), staging)
        ref = import_pdparams(
            path,
            store,
            0 if args.step is None else args.step,
            staging,
            allow_pickle=args.allow_pickle,
            source=args.src,
            hint=IMPORT_HINT,
        )
    print(f"imported {args.src} -> {ref.uri} (manifest sha256 {ref.manifest_sha256})")
    return EXIT_OK


def _import_ppdet_run(args: argparse.Namespace) -> int:
    """ppdet's .pdparams + .pdopt (+ .pdema) with the run's config: a step an exact resume continues."""
    if args.step is not None:
        raise ConfigError("--step cannot be set with --config: the step is the one ppdet's .pdopt records")
    from app.tasks.det.ppdet_import import import_ppdet_run

    cfg = load_config(args.config, args.overrides)
    store = _open(args.dest, writes="DEST_URI")
    with _staging() as staging:
        ref = import_ppdet_run(args.src, cfg, store, staging, allow_pickle=args.allow_pickle)
    print(
        f"imported ppdet run {args.src} -> {ref.uri} (step {ref.step}, manifest sha256 {ref.manifest_sha256})"
    )
    sets = "".join(f" --set {o}" for o in args.overrides)
    print(f"continue it with: warmstart train --config {args.config}{sets} --set checkpoint.uri={args.dest}")
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    _check_tag_arg(args.tag)  # a usage error, found before anything is read or hashed
    store = _open(args.uri, writes="URI")
    ref = _pick(store, None, args.step)
    if not ref.key:
        raise CheckpointError(f"{args.uri}: promote a checkpoint root (the folder holding step-* folders)")
    with _staging() as staging:
        reader.verify(store, ref, staging)
    promote(store, ref, args.tag, args.note, force=args.force)
    print(f"promoted step {ref.step} of {store.uri} as {args.tag!r} (manifest sha256 {ref.manifest_sha256})")
    print(f"start a run from it with: init.from={store.uri.rstrip('/')}#{args.tag}")
    return EXIT_OK


def _check_tag_arg(name: str) -> None:
    try:
        check_tag_name(name)
    except CheckpointError as exc:
        raise ConfigError(f"--tag: {exc.message}", hint=exc.hint) from None


# -- parser ----------------------------------------------------------------------------------------
def _add_step(p: argparse.ArgumentParser, help_: str) -> None:
    p.add_argument("--step", type=int, default=None, metavar="N", help=help_)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ckpt", help="list, show, verify, gc, import and promote checkpoints")
    verbs = p.add_subparsers(dest="ckpt_command", metavar="VERB")
    verbs.required = True

    ls = verbs.add_parser("ls", help="list step folders: time, size, status, tags, metrics")
    ls.add_argument("uri", metavar="URI")
    ls.add_argument("--verify", action="store_true", help="re-hash every committed checkpoint (slow)")
    ls.set_defaults(func=cmd_ls)

    show = verbs.add_parser("show", help="manifest, lineage and trainer state of one checkpoint")
    show.add_argument("uri", metavar="URI[#TAG]")
    _add_step(show, "this step instead of the latest")
    show.set_defaults(func=cmd_show)

    verify = verbs.add_parser("verify", help="re-hash files against the manifest (exit 4 on mismatch)")
    verify.add_argument("uri", metavar="URI[#TAG]")
    _add_step(verify, "only this step (default: every committed step)")
    verify.set_defaults(func=cmd_verify)

    gc = verbs.add_parser(
        "gc",
        help="apply retention and delete old uncommitted leftovers (never the newest committed step, "
        "never a step whose manifest cannot be read)",
    )
    gc.add_argument("uri", metavar="URI")
    gc.add_argument("--dry-run", action="store_true", help="print what would be deleted")
    gc.add_argument("--keep-last", type=int, default=None, metavar="N", help="keep the newest N (N >= 1)")
    gc.add_argument(
        "--keep-best", type=int, default=None, metavar="K", help="also keep the best K (needs --metric)"
    )
    gc.add_argument("--metric", default=None, help="metric in meta.json used for --keep-best")
    gc.add_argument("--mode", choices=["max", "min"], default=None, help="is a higher metric better (max)?")
    gc.add_argument(
        "--leftover-minutes",
        type=float,
        default=None,
        metavar="MIN",
        help="age before a folder without a manifest is deleted",
    )
    gc.set_defaults(func=cmd_gc)

    imp = verbs.add_parser(
        "import",
        help="convert a weights file (pickled .pdparams, or safetensors) into a checkpoint; with --config, "
        "a ppdet training save (.pdparams + .pdopt [+ .pdema]) into a step that `train` continues",
    )
    imp.add_argument("src", metavar="SRC")
    imp.add_argument("dest", metavar="DEST_URI")
    imp.add_argument(
        "--allow-pickle",
        action="store_true",
        help="required for a pickle (found by content, whatever its name): unpickling runs code from it",
    )
    imp.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="N",
        help="step number to give it (default 0; not with --config)",
    )
    add_config_args(imp, required=False)
    imp.epilog = (
        "with --config RUN.yaml (a detection config naming the ppdet config the run used), SRC is ppdet's "
        "save (e.g. output/<cfg>/model_final.pdparams): its .pdopt and, with use_ema, .pdema are read too, "
        "and the step is the one ppdet reached"
    )
    imp.set_defaults(func=cmd_import)

    pro = verbs.add_parser("promote", help="mark a committed checkpoint as a named version (URI#NAME)")
    pro.add_argument("uri", metavar="URI")
    pro.add_argument("--tag", required=True, metavar="NAME")
    _add_step(pro, "this step instead of the latest")
    pro.add_argument("--note", default="", help="free text stored with the tag")
    pro.add_argument("--force", action="store_true", help="replace an existing tag of this name")
    pro.set_defaults(func=cmd_promote)
