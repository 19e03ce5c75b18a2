"""The residual U-Net of DanceCam (Bialek et al. 2024) and the pixel transforms around it.

``config`` (UNetConfig), ``model`` (the network), ``checkpoint`` (dancekit and DanceCam
weights), ``transforms`` (background, Anscombe), ``augment`` (training samples), ``losses``
(deep-supervision MSE).
"""
