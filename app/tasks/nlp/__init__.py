"""NLP task adapters on PaddleNLP: sequence classification and token classification (see docs/nlp.md)."""

__all__ = ["task", "translate"]
