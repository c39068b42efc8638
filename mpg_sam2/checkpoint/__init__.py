"""Checkpoints: the files of a checkpoint folder, the Hub, the authors' names, loading and saving.

From the bottom up (each module imports only those above it, and none imports the app, the
pipeline or training; the model never imports this package):

* ``files.py``: the names of a checkpoint folder's files (weights, ``config.json``, the one list
  of tokenizer files), reading ``config.json``;
* ``evaluation.py``: the ``evaluation.json`` a checkpoint may carry, and the grounding margin;
* ``hub.py``: the one offline flag, and every call to the Hugging Face Hub;
* ``read_weights.py`` / ``write_weights.py``: weights files to ``{name: tensor}`` and back;
* ``key_mapping.py``: the authors' state-dict names to ours;
* ``strict_loading.py``: building a model without weights and loading a state dict strictly;
* ``registry.py``: the released checkpoints by name, and where each is in the Hub repository;
* ``pretrained.py``: :func:`load_pretrained`, the one way in, and :func:`save_pretrained`.
"""
