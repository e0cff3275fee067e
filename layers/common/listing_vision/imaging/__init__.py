"""Image handling: decoding and validating uploads, segmentation, compositing, quality metrics."""
