"""From a video file and sentences to masks, priors, attention maps and exports."""
