"""Training MPG-SAM 2 (never imported by the model, the pipeline or the app).

Data flow of one optimizer step, one file per stage::

    datasets (clips from ReferringDataset / RefCOCO) -> augment (both views + text consistent)
    -> forward (inference path with gradients) -> losses (focal + dice + sim, SPEC §11)
    -> trainer (accumulation, clipping, AdamW over param_groups, bf16 on CUDA, DDP via distributed)
    -> checkpointing (load_pretrained's directory format + training_state.pt), validation (J&F)

One loop (trainer) for every objective (objectives: which parameters train, how clips are
grouped, which loss, how to validate): the paper's training of the whole model, and the warm-up
of BEiT-3 + the mask prior generator on the prior loss (prior_warmup). A run's settings are a
train_config.TrainConfig; bootstrap decides its tokenizer, model configuration and initial
weights (init_weights: official SAM 2 / BEiT-3 files; tokenizer_training: a small sentencepiece
tokenizer saved like XLM-R's). Around it: ablations (the paper's Table 3 switches), cli
(``python -m mpg_sam2 train``), offline_model (the command that builds the bundled model from
offline_recipe and writes offline_card). Importing this package loads nothing heavy; import the
modules.
"""
