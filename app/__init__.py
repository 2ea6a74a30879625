"""Warmstart: PaddlePaddle fine-tuning that resumes exactly and never loses a checkpoint.

Importing this package first imports :mod:`zlib`. libpaddle exports its own zlib symbols; if Python's
zlib is loaded after it, zlib/PNG/pycocotools calls can crash (Paddle#70538). Every module of ours imports
paddle only after ``app`` is imported, so this one line guards the whole project.
"""

import zlib  # noqa: F401  (must precede the first `import paddle`; see module docstring)

__all__ = ["__version__"]

__version__ = "0.1.0"
