"""The ``nn.Module`` classes that recipes name: one concept per file, imported only to build a model.

Each file imports only torch, the standard library and other files of this package, and every top-level
name is unique across the package, so ``archdsl export`` can copy the files a model uses into one
standalone ``model.py``. Paper-derived modules open with the paper's title and arXiv id. A module names in
its ``NO_WEIGHT_DECAY`` class attribute its own parameters that training does not decay (embeddings,
relative-position tables, gates); norms and biases need no such list (``archdsl.train.module.param_groups``).
"""
