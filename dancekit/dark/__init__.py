"""Dark frames of multi-channel CCDs: raw-frame layout, simulator, baselines and Deep-Dark-Net.

Modules (library only: arrays/tensors in, arrays/tensors out; no files, no printing):

* ``layout``       -- ``RawLayout``: channels, segments, named regions; cut / reassemble frames.
* ``cameras``      -- LAMOST, FITS BIASSEC/TRIMSEC and YAML-mapping layouts (data, not code).
* ``simulate``     -- synthetic raw darks (bias, read noise, dark current doubling per 6.4 degC,
                      fixed camera pattern, shot noise) with their noise-free expectation.
* ``baselines``    -- overscan bias, optical-black level, 'median' and 'scaled' dark estimates.
* ``conditioning`` -- generator inputs from the overscan / optical-black strips (+ template,
                      coordinates); targets (absolute / above_overscan / above_scaled); ADU affine.
* ``template_codec`` -- the master template stored compactly inside a model file.
* ``networks``     -- Deep-Dark-Net generator and the 70x70 PatchGAN discriminator.
* ``training``     -- GAN losses, one training step, an epoch loop, prediction in ADU.

Reference: Qu Bohuan et al. 2024, Progress in Astronomy 42(4) (``shared/seeds/002``).
"""
