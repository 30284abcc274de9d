"""A learned semantic codec measured on real images: small CLIP-style encoders trained here.

This world has no model hub, so real CLIP weights cannot be loaded; this package trains a family
of small CLIP-style image encoders on real labelled images (Fashion-MNIST from Debian's
``dataset-fashion-mnist``, or scikit-learn's bundled digits for tests) and measures task tables
from them through the feature channel (docs/model.md).

``data`` (the image sets), ``model`` (ViT image encoders, learned class prompts, MACs),
``train`` (contrastive training, plain or channel-robust), ``nam`` (VLM-CSC's SNR-conditioned
noise attention module), ``med`` (VLM-CSC's memory-assisted continual learning), ``measure``
(accuracy and log p(true) over an SNR grid). The table builder that trains and measures them
(``semcom-jax tables train-encoders``) lives with the other builders,
:mod:`semcom_jax.builders.encoders`.
"""
