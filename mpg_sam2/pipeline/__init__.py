"""From frames or a video file and sentences to masks, priors, attention maps and exports.

* :mod:`.expressions`: checking and tokenising the sentences of a request;
* :mod:`.clicks`: the click corrections of a request (JSON in, checked, SAM 2 coordinates out);
* :mod:`.segmentation`: :func:`segment_video`, every sentence over one video through the model's
  frame loop (image features shared), masks at the source resolution, then the click
  corrections;
* :mod:`.attention_maps`: the attention overlays, recorded without changing a number;
* :mod:`.devices`: choosing the device and checking the precision;
* :mod:`.video_file`: a video file in, the exports out (the CLI's ``segment``).
"""
