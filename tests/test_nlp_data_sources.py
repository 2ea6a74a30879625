"""More NLP data sources: Hugging Face ``save_to_disk`` folders and files in a PaddleNLP dataset's own layout
(read by that dataset's reader), each built in tmp and trained for a few steps; their one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.cli import main
from app.tasks.nlp.synthetic import make_model_dir, write_ner, write_reviews
from tests.train_helpers import run_inprocess

SEQ = "configs/nlp_seq_cls.yaml"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src")
    make_model_dir(root / "bert", "bert", seed=0)
    write_reviews(root / "train.csv", 96, seed=1, negation=0.0)
    write_reviews(root / "eval.csv", 32, seed=2, negation=0.0)
    return root


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _overrides(toy: Path, run: Path, train: Path, evals: Path, **extra: object) -> list[str]:
    base = {
        "run.dir": run, "task.options.model_dir": toy / "bert", "task.options.train_file": train,
        "task.options.eval_file": evals, "training_args.max_steps": 6, "training_args.save_steps": 3,
        "train.eval_every_steps": 6, "train.progress_bar": "off", "training_args.warmup_ratio": 0.0,
        "training_args.per_device_train_batch_size": 16,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _trained_steps(run: Path) -> int:
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return max(e.get("step", 0) for e in log)


def _hf_dict(toy: Path, out: Path) -> Path:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"sentence": Value("string"), "polarity": ClassLabel(names=["neg", "pos"])})

    def part(name: str) -> Dataset:
        rows = _rows(toy / f"{name}.csv")
        cols = {"sentence": [r["text"] for r in rows], "polarity": [r["label"] for r in rows]}
        return Dataset.from_dict(cols, features=features)

    DatasetDict({"train": part("train"), "test": part("eval")}).save_to_disk(str(out))
    return out


def test_hf_save_to_disk_folders_train_with_classlabel_names(toy, tmp_path):
    data = _hf_dict(toy, tmp_path / "reviews")
    cols = {"task.options.text_column": "sentence", "task.options.label_column": "polarity"}
    ov = _overrides(toy, tmp_path / "run", data / "train", data / "test", **cols)
    rc, session = run_inprocess(ov, config=SEQ)  # format auto: a save_to_disk folder is hf_disk
    assert rc == 0 and _trained_steps(tmp_path / "run") == 6
    assert session.task.labels == ["neg", "pos"]  # ClassLabel names, not 0/1
    assert session.task.train_size() == 96
    want = [(r["text"], r["label"]) for r in _rows(toy / "train.csv")]
    from app.tasks.nlp import data_sources

    got = data_sources.read_hf_disk(data / "train", "sentence", None, "polarity")
    assert [(e.text, e.label) for e in got] == want and got[4].where == f"{data / 'train'}:5"


def test_hf_datasetdict_root_and_a_plain_folder_are_one_line_exit_5(toy, tmp_path, capsys):
    data = _hf_dict(toy, tmp_path / "reviews")
    ov = _overrides(toy, tmp_path / "run", data, data / "test", **{"task.options.format": "hf_disk"})
    assert main(["train", "-c", SEQ] + [a for o in ov for a in ("--set", o)]) == 5
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"warmstart: task: data folder '{data}' is a DatasetDict (splits: test, train) (point "
        f"task.options.train_file / eval_file at one split, e.g. {data}/test)"
    )
    (tmp_path / "plain").mkdir()
    ov = _overrides(
        toy, tmp_path / "run", tmp_path / "plain", data / "test", **{"task.options.format": "hf_disk"}
    )
    assert main(["train", "-c", SEQ] + [a for o in ov for a in ("--set", o)]) == 5
    assert "has no state.json: not written by datasets' save_to_disk" in capsys.readouterr().err


def _chnsenticorp(toy: Path, out: Path) -> tuple[Path, Path]:
    """ChnSentiCorp's own layout: train ``label<TAB>text_a``, dev ``qid<TAB>label<TAB>text_a`` (headers)."""
    out.mkdir(parents=True)
    code = {"neg": "0", "pos": "1"}
    train = ["label\ttext_a"] + [f"{code[r['label']]}\t{r['text']}" for r in _rows(toy / "train.csv")]
    dev = ["qid\tlabel\ttext_a"] + [
        f"{i}\t{code[r['label']]}\t{r['text']}" for i, r in enumerate(_rows(toy / "eval.csv"))
    ]
    (out / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "dev.tsv").write_text("\n".join(dev) + "\n", encoding="utf-8")
    return out / "train.tsv", out / "dev.tsv"


def test_paddlenlp_dataset_files_are_read_by_paddlenlps_reader(toy, tmp_path):
    train, dev = _chnsenticorp(toy, tmp_path / "ChnSentiCorp")
    opts = {"task.options.format": "paddlenlp", "task.options.paddlenlp_dataset": "chnsenticorp"}
    rc, session = run_inprocess(_overrides(toy, tmp_path / "run", train, dev, **opts), config=SEQ)
    assert rc == 0 and _trained_steps(tmp_path / "run") == 6
    assert session.task.labels == ["0", "1"]  # the reader's label_list
    assert session.task.train_size() == 96 and len(session.task.eval) == 32
    from app.tasks.nlp import data_sources

    got = data_sources.read_paddlenlp(dev, "chnsenticorp", None, "dev", ("text", None, "label"))
    want = [(r["text"], {"neg": "0", "pos": "1"}[r["label"]]) for r in _rows(toy / "eval.csv")]
    assert [(e.text, e.label) for e in got] == want


def test_paddlenlp_format_errors_are_one_line(toy, tmp_path, capsys):
    train, dev = _chnsenticorp(toy, tmp_path / "ChnSentiCorp")
    ov = _overrides(toy, tmp_path / "run", train, dev, **{"task.options.format": "paddlenlp"})
    assert main(["train", "-c", SEQ] + [a for o in ov for a in ("--set", o)]) == 2
    assert "task.options.paddlenlp_dataset: required with format paddlenlp" in capsys.readouterr().err
    bad = {"task.options.format": "paddlenlp", "task.options.paddlenlp_dataset": "no_such_set"}
    ov = _overrides(toy, tmp_path / "run", train, dev, **bad)
    assert main(["train", "-c", SEQ] + [a for o in ov for a in ("--set", o)]) == 5
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "warmstart: task: task.options.paddlenlp_dataset: 'no_such_set' is not a PaddleNLP dataset (name a "
        "module of paddlenlp.datasets (chnsenticorp, lcqmc, clue, ...))"
    )


def _start_lr_lints(overrides: list[str], config: str = SEQ) -> list[str]:
    from app.config import load_config
    from app.schedule.build import build_schedule
    from tests.train_helpers import ROOT

    cfg = load_config(ROOT / config, overrides, env={})
    built = build_schedule(cfg.schedule, steps_per_epoch=100, global_batch=32, optimizer_name=cfg.optim.name)
    return [w for w in built.warnings if "start_lr is 0" in w]


def test_start_lr_lint_is_quiet_for_paddlenlps_own_warmup_only():
    """training_args warmup starts at 0 as PaddleNLP's does: no lint. Our own keys, or start_lr set by hand
    next to training_args: the lint stays."""
    assert _start_lr_lints([]) == []  # the shipped config: warmup_ratio 0.1 in training_args
    assert _start_lr_lints(["training_args.warmup_ratio=0", "training_args.warmup_steps=5"]) == []
    own = ["schedule.warmup.steps=5", "schedule.total_steps=100", "schedule.decay.kind=linear"]
    assert (
        len(_start_lr_lints(own, config="configs/nlp_token_cls.yaml")) == 1
    )  # hand-written, no training_args
    assert (
        len(_start_lr_lints(["schedule.warmup.start_lr=0"])) == 1
    )  # start_lr is the user's, not PaddleNLP's


def _ner_sentences(toy: Path) -> dict[str, list]:
    from app.tasks.nlp import data

    write_ner(toy / "ner/train.conll", 64, seed=5)
    write_ner(toy / "ner/eval.conll", 24, seed=6)
    return {n: data.read_conll(toy / f"ner/{n}.conll") for n in ("train", "eval")}


TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def _tok_overrides(toy: Path, run: Path, train: Path, evals: Path, **extra: object) -> list[str]:
    base = {
        "run.dir": run, "task.options.model_dir": toy / "bert", "task.options.train_file": train,
        "task.options.eval_file": evals, "schedule.total_steps": 6, "checkpoint.every_steps": 3,
        "train.eval_every_steps": 6, "train.progress_bar": "off", "train.batch_size": 16,
        "schedule.warmup.steps": 2,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_ner_from_hf_save_to_disk_and_paddlenlp_msra_ner_files(toy, tmp_path):
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    from app.tasks.nlp import data_sources

    sents = _ner_sentences(toy)
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=TAGS))})
    for name, examples in sents.items():
        cols = {"tokens": [list(e.tokens) for e in examples], "ner_tags": [list(e.tags) for e in examples]}
        Dataset.from_dict(cols, features=features).save_to_disk(str(tmp_path / f"hf/{name}"))
        lines = ["\002".join(e.tokens) + "\t" + "\002".join(e.tags) for e in examples]  # msra_ner's layout
        (tmp_path / f"msra_{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    want = [(e.tokens, e.tags) for e in sents["train"]]
    got = data_sources.read_hf_disk_tags(tmp_path / "hf/train", "tokens", "ner_tags")
    assert [(e.tokens, e.tags) for e in got] == want  # ClassLabel numbers back to tag names
    got = data_sources.read_paddlenlp_tags(
        tmp_path / "msra_train.txt", "msra_ner", None, "train", "tokens", "labels"
    )
    assert [(e.tokens, e.tags) for e in got] == want  # the reader's label_list ids back to names

    tok = "configs/nlp_token_cls.yaml"
    ov = _tok_overrides(toy, tmp_path / "run_hf", tmp_path / "hf/train", tmp_path / "hf/eval",
                        **{"task.options.format": "hf_disk"})  # fmt: skip
    rc, session = run_inprocess(ov, config=tok)
    assert rc == 0 and _trained_steps(tmp_path / "run_hf") == 6 and session.task.train_size() == 64
    opts = {"task.options.format": "paddlenlp", "task.options.paddlenlp_dataset": "msra_ner",
            "task.options.tags_column": "labels", "task.options.paddlenlp_eval_split": "test"}  # fmt: skip
    ov = _tok_overrides(
        toy, tmp_path / "run_pn", tmp_path / "msra_train.txt", tmp_path / "msra_eval.txt", **opts
    )
    rc, session = run_inprocess(ov, config=tok)
    assert rc == 0 and _trained_steps(tmp_path / "run_pn") == 6 and len(session.task.eval) == 24


def test_ner_rows_with_mismatched_lengths_are_one_line(tmp_path):
    from datasets import Dataset

    from app.errors import TaskError
    from app.tasks.nlp import data_sources

    Dataset.from_dict({"tokens": [["a", "b"]], "ner_tags": [["O"]]}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(TaskError, match=r"bad:1: 'tokens' and 'ner_tags' must be lists of the same length"):
        data_sources.read_hf_disk_tags(tmp_path / "bad", "tokens", "ner_tags")
