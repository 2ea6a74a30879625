"""NLP data: readers and their one-line errors (file:line), label sets, tokenization, padding and metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from app.errors import TaskError
from app.tasks.nlp import data
from app.tasks.nlp.features import IGNORE, encode_tags, encode_texts, pad_batch
from app.tasks.nlp.metrics import chunk_metrics, seq_metrics, word_level
from app.tasks.nlp.synthetic import make_model_dir, write_ner
from tests.train_helpers import ROOT


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from app.tasks.nlp.pretrained import load_tokenizer

    return load_tokenizer(make_model_dir(tmp_path_factory.mktemp("nlp") / "model"))


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_tsv_jsonl_read_the_same_examples(tmp_path):
    csv_ = _write(tmp_path / "a.csv", 'text,label\n"good, really",pos\n\nbad film,neg\n')
    tsv = _write(tmp_path / "a.tsv", "label\ttext\npos\tgood, really\nneg\tbad film\n")
    jsonl = _write(
        tmp_path / "a.jsonl",
        '{"text": "good, really", "label": "pos"}\n\n{"text": "bad film", "label": "neg"}\n',
    )
    got = [data.read_text_examples(p, "auto", "text", None, "label") for p in (csv_, tsv, jsonl)]
    for examples in got:
        assert [(e.text, e.pair, e.label) for e in examples] == [
            ("good, really", None, "pos"),
            ("bad film", None, "neg"),
        ]
    assert [e.where for e in got[0]] == [f"{csv_}:2", f"{csv_}:4"]
    assert [e.where for e in got[2]] == [f"{jsonl}:1", f"{jsonl}:3"]


@pytest.mark.parametrize(
    ("name", "text", "cols", "message"),
    [
        ("a.csv", "sentence,label\nhi,pos\n", ("text", None, "label"),
         "{p}:2: missing column 'text' (found: sentence, label) "
         "(set task.options.text_column / text_pair_column / label_column)"),
        ("a.csv", "text,label\nhi,pos\nyo,neg\n", ("text", "text_b", "label"),
         "{p}:2: missing column 'text_b' (found: text, label) "
         "(set task.options.text_column / text_pair_column / label_column)"),
        ("a.csv", "text,label\nhi,pos\nyo,\n", ("text", None, "label"), "{p}:3: empty label in column 'label'"),
        ("a.csv", "text,label\nhi,pos,extra\n", ("text", None, "label"), "{p}:2: 3 fields, the header has 2"),
        ("a.csv", "", ("text", None, "label"), "data file '{p}' holds no examples (is it the right file?)"),
        ("a.csv", "text,label\n\n", ("text", None, "label"), "data file '{p}' holds no examples (is it the right file?)"),
        ("a.jsonl", '{"text": "a", "label": 1}\n[1]\n', ("text", None, "label"), "{p}:2: expected a JSON object, got list"),
        ("a.jsonl", '{"text": "a"\n', ("text", None, "label"), "{p}:1: invalid JSON (Expecting ',' delimiter)"),
        ("a.txt", "x\n", ("text", None, "label"),
         "data file '{p}': cannot tell the format from the suffix '.txt' (set task.options.format to csv, tsv or jsonl)"),
    ],
)  # fmt: skip
def test_text_data_errors_name_file_and_line(tmp_path, name, text, cols, message):
    path = _write(tmp_path / name, text)
    with pytest.raises(TaskError) as err:
        data.read_text_examples(path, "auto", *cols)
    assert err.value.line() == message.format(p=path)


def test_missing_file_and_conll_errors(tmp_path):
    with pytest.raises(TaskError, match=r"does not exist \(check task.options.\*_file\)$"):
        data.read_conll(tmp_path / "nope.conll")
    bad = _write(tmp_path / "b.conll", "anna B-PER\nmet\n")
    with pytest.raises(TaskError) as err:
        data.read_conll(bad)
    assert err.value.line() == f"{bad}:2: expected 'token tag' (whitespace-separated), got 'met'"
    empty = _write(tmp_path / "e.conll", "-DOCSTART- O\n\n\n")
    with pytest.raises(TaskError, match="holds no sentences"):
        data.read_conll(empty)


def test_conll_sentences_labels_and_unknown_labels(tmp_path):
    path = _write(
        tmp_path / "n.conll", "-DOCSTART- -X- O\n\nanna NNP B-PER\nmet VBD O\n\n\nnew B-LOC\nyork I-LOC\n"
    )
    sents = data.read_conll(path)
    assert [(s.tokens, s.tags, s.where) for s in sents] == [
        (("anna", "met"), ("B-PER", "O"), f"{path}:3"),
        (("new", "york"), ("B-LOC", "I-LOC"), f"{path}:7"),
    ]
    labels = data.label_set(None, [t for s in sents for t in s.tags], str(path))
    assert labels == ["B-LOC", "B-PER", "I-LOC", "O"]  # sorted, documented
    assert data.label_set(["O", "B-PER"], ["B-PER"], "x") == ["O", "B-PER"]  # configured order wins
    with pytest.raises(TaskError) as err:
        data.check_labels([("O", "f:1"), ("B-ORG", "f:9")], labels)
    assert err.value.line() == (
        "f:9: unknown label 'B-ORG' (labels: B-LOC, B-PER, I-LOC, O) (add it to task.options.labels or fix the data)"
    )


def test_text_pairs_get_segment_ids_and_batches_pad_with_the_pad_id(tokenizer):
    ex = [
        data.TextExample("the movie was good", "it is bad", "pos", "x:2"),
        data.TextExample("dull", None, "neg", "x:3"),
    ]
    enc = encode_texts(tokenizer, ex, ["neg", "pos"], max_len=32)
    vocab = tokenizer.vocab
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    words = [vocab[w] for w in "the movie was good".split()]
    pair = [vocab[w] for w in "it is bad".split()]
    assert enc.input_ids[0].tolist() == [cls, *words, sep, *pair, sep]
    assert enc.token_type_ids[0].tolist() == [0] * 6 + [1] * 4
    ids, types, ys = pad_batch(enc, [1, 0], pad_id=tokenizer.pad_token_id)
    assert ids.dtype == np.int64 and ids.shape == (2, 10)
    assert ids[0].tolist() == [cls, vocab["dull"], sep] + [tokenizer.pad_token_id] * 7
    assert types[0].tolist() == [0] * 10 and ys.tolist() == [0, 1]
    short = encode_texts(tokenizer, ex[:1], ["neg", "pos"], max_len=8)
    assert len(short.input_ids[0]) == 8  # truncated, special tokens kept


def test_tags_sit_on_the_first_sub_token_of_each_word(tokenizer):
    ex = [data.TagExample(("annabel", "met", "bob"), ("B-PER", "O", "B-PER"), "x:1")]
    labels = ["B-PER", "O"]
    enc = encode_tags(tokenizer, ex, labels, max_len=32)
    assert tokenizer.convert_ids_to_tokens(enc.input_ids[0].tolist()) == [
        "[CLS]",
        "anna",
        "##bel",
        "met",
        "bob",
        "[SEP]",
    ]
    assert enc.labels[0].tolist() == [IGNORE, 0, IGNORE, 1, 0, IGNORE]
    assert enc.words == [3]
    cut = encode_tags(tokenizer, ex, labels, max_len=5)  # [CLS] anna ##bel met [SEP]: "bob" dropped
    assert cut.labels[0].tolist() == [IGNORE, 0, IGNORE, 1, IGNORE] and cut.words == [2]


def test_seq_metrics_accuracy_and_macro_f1():
    pred, gold = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    m = seq_metrics(pred, gold, 3)
    # class 0: tp 1, |pred| 2, |gold| 2 -> 0.5; class 1: tp 2, 2, 3 -> 0.8; class 2: 0
    assert m == {"accuracy": 0.6, "macro_f1": pytest.approx((0.5 + 0.8 + 0.0) / 3)}


def test_chunk_metrics_count_entities_not_tokens():
    labels = ["B-PER", "I-PER", "B-LOC", "O"]
    gold = np.array([[IGNORE, 0, 1, 3, 2, IGNORE], [IGNORE, 2, 3, IGNORE, IGNORE, IGNORE]])
    pred = np.array(
        [[3, 0, 1, 3, 0, 3], [3, 2, 2, 3, 3, 3]]
    )  # PER right, LOC->PER wrong; LOC right + extra LOC
    lengths, wp, wl = word_level(pred, gold)
    assert lengths.tolist() == [4, 2] and wl.tolist() == [[0, 1, 3, 2], [2, 3, 0, 0]]
    m = chunk_metrics([(lengths, wp, wl)], labels)
    assert m == {
        "precision": pytest.approx(2 / 4),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(4 / 7),
    }


def test_a_model_dir_without_tokenizer_files_stops_with_exit_5(tmp_path, capsys):
    model = make_model_dir(tmp_path / "model")
    (model / "tokenizer_config.json").unlink()
    train = write_ner(tmp_path / "ner.conll", 5, seed=0)
    sets = [f"task.options.model_dir={model}", f"task.options.train_file={train}",
            f"task.options.eval_file={train}", f"run.dir={tmp_path / 'run'}"]  # fmt: skip
    code = main(
        ["train", "-c", str(ROOT / "configs/nlp_token_cls.yaml")] + [a for s in sets for a in ("--set", s)]
    )
    assert code == 5
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"warmstart: task: model_dir '{model}' lacks tokenizer_config.json "
        "(save both the model and the tokenizer with save_pretrained into that folder)"
    )
    assert json.loads((model / "config.json").read_text())["hidden_size"] == 32
