"""Small generated NLP data and a tiny randomly initialised "pretrained" folder (nothing is downloaded).

For tests, the benchmark and trying the configs out: ``python -m app.tasks.nlp.synthetic runs/nlp_toy``
writes ``model/`` (a 2-layer BERT, hidden 32, with its own vocabulary), ``seq/{train,eval}.csv`` (review
polarity with negation) and ``ner/{train,eval}.conll`` (PER/LOC/ORG tags, some names split into
sub-words). Every generator is a pure function of its seed.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

__all__ = [
    "VOCAB",
    "review",
    "write_reviews",
    "write_ner",
    "make_model_dir",
    "main",
]

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POS = ["good", "great", "excellent", "lovely", "superb", "fine", "brilliant", "charming"]
NEG = ["bad", "awful", "poor", "terrible", "boring", "dull", "weak", "clumsy"]
NOUNS = ["movie", "film", "plot", "story", "acting", "music", "ending", "cast", "script", "camera"]
FILLER = ["the", "a", "was", "is", "and", "but", "really", "quite", "very", "so", "this", "that", "it"]
PEOPLE = ["anna", "bob", "chen", "dara", "emil", "farah", "annabel", "bobbie"]  # the last two: sub-words
PLACES = ["paris", "lima", "oslo", "cairo", "new york", "hong kong", "san jose"]
ORGS = ["acme corp", "globex", "initech", "umbrella inc", "stark labs"]
VERBS = ["met", "visited", "joined", "left", "called", "saw", "praised"]
GLUE = ["in", "at", "with", "from", "near", "today", "yesterday", "later", "then"]
#: Word pieces that let "annabel" / "bobbie" split (BERT WordPiece: "##" continues a word).
PIECES = ["##bel", "##bie"]


def _words(phrases: list[str]) -> list[str]:
    return [w for p in phrases for w in p.split()]


VOCAB: list[str] = SPECIAL + sorted(
    set(POS + NEG + NOUNS + FILLER + ["not"] + _words(PLACES + ORGS) + VERBS + GLUE + PEOPLE[:6] + PIECES)
)


def review(rng: random.Random, neutral: bool = False, negation: float = 0.3) -> tuple[str, str]:
    """A review and its polarity: 1 or 3 adjectives, each maybe negated ("not good" counts negative).

    ``neutral`` gives sentences with no adjective at all (label "neutral", for a 3-class related task).
    """
    noun = rng.choice(NOUNS)
    words = [rng.choice(["the", "this", "that"]), noun, rng.choice(["was", "is"])]
    if neutral:
        words += rng.sample(FILLER, 3) + [rng.choice(NOUNS)]
        return " ".join(words), "neutral"
    score = 0
    for i in range(rng.choice([1, 3])):
        if i:
            words.append(rng.choice(["and", "but", "so"]))
        if rng.random() < 0.3:
            words.append(rng.choice(["really", "quite", "very"]))
        negated = rng.random() < negation
        positive = rng.random() < 0.5
        words += (["not"] if negated else []) + [rng.choice(POS if positive else NEG)]
        score += 1 if positive != negated else -1
    return " ".join(words), "pos" if score > 0 else "neg"


def write_reviews(path: Path, n: int, seed: int, neutral_share: float = 0.0, negation: float = 0.3) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for _ in range(n):
            out.writerow(review(rng, neutral=rng.random() < neutral_share, negation=negation))
    return path


def _entity(rng: random.Random, kind: str) -> list[tuple[str, str]]:
    phrase = rng.choice({"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}[kind]).split()
    return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(phrase)]


def ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """ "<PER> <verb> <PER|ORG> <glue> <LOC|ORG> [glue]" with BIO tags."""
    words = _entity(rng, "PER") + [(rng.choice(VERBS), "O")]
    words += _entity(rng, rng.choice(["PER", "ORG"]))
    words += [(rng.choice(GLUE[:5]), "O")] + _entity(rng, rng.choice(["LOC", "LOC", "ORG"]))
    if rng.random() < 0.5:
        words.append((rng.choice(GLUE[5:]), "O"))
    return words


def write_ner(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = ["\n".join(f"{w} {t}" for w, t in ner_sentence(rng)) for _ in range(n)]
    path.write_text("-DOCSTART- O\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def make_model_dir(out: Path, arch: str = "bert", seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """save_pretrained a randomly initialised BERT or ERNIE backbone and its tokenizer into ``out``."""
    import paddle
    from paddlenlp import transformers as T

    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    size = dict(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64, type_vocab_size=2,
    )  # fmt: skip
    model_cls, config_cls, tok_cls = {
        "bert": (T.BertModel, T.BertConfig, T.BertTokenizer),
        "ernie": (T.ErnieModel, T.ErnieConfig, T.ErnieTokenizer),
    }[arch]
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        model = model_cls(config_cls(**size))
    model.save_pretrained(str(out), safe_serialization=True)
    tok_cls(vocab_file=str(vocab)).save_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="write a toy NLP model folder and data sets")
    p.add_argument("out", type=Path)
    p.add_argument("--arch", choices=["bert", "ernie"], default="bert")
    args = p.parse_args(argv)
    make_model_dir(args.out / "model", args.arch)
    write_reviews(args.out / "seq/train.csv", 800, seed=1)
    write_reviews(args.out / "seq/eval.csv", 200, seed=2)
    write_ner(args.out / "ner/train.conll", 400, seed=3)
    write_ner(args.out / "ner/eval.conll", 100, seed=4)
    print(args.out)
    return 0


if __name__ == "__main__":
    import zlib  # noqa: F401  (before paddle: FIELD_NOTES)

    raise SystemExit(main())
