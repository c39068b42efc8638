"""The MPG-SAM 2 network, one file per concept of the paper.

Data flow for one video (T frames) and one sentence::

    frames --224--> beit3 (per frame, with the caption) -> mask_prior_generator (all frames
      jointly): mask priors [T, 1, g, g] + global context -> MPGSAM2.encode_expression: the
      sentence's prompts for every frame (video_propagation.ReferringPrompts)
    frames --S--> frame_features (SAM 2's image encoder, once per frame, shared by sentences)
    video_propagation.propagate, THE frame loop: per frame, each sentence's ExpressionTracker
      runs SAM 2's memory attention, prompted_sam2's heads (mask_decoder with the
      global_historical_aggregator inside) and SAM 2's memory encoder
    click_correction.repropagate: clicks on a frame (point_prompt) make it a conditioning
      frame; that sentence's tracker runs again from it, forward then backward, on the kept features

The model imports only :mod:`mpg_sam2.config` and the ``sam2`` package (extended by subclassing;
what is adapted from it says so and is pinned by tests/test_sam2_signatures.py). Loading
weights is :mod:`mpg_sam2.checkpoint`'s job.
"""
