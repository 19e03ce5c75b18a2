"""optics: pupils, von Karman phase screens, frozen flow, Fresnel propagation, PSFs (pure torch).

Modules: ``turbulence`` (r0, seeing, layer r0, Tokovinin FWHM, analytic annular Airy),
``pupil`` (annular pupil, Tukey incident wave), ``phase_screens`` (PSD, FFT + subharmonic
screens, structure function), ``frozen_flow`` (wind-aligned layer screens, anisoplanatic windows),
``propagation`` (angular-spectrum Fresnel, split-step), ``psf`` (PSFs, pixel integration, star
rendering), ``batched_psf`` (the fast path for many windows' PSFs), ``spectrum`` (finite
bandwidth: wavelengths of a band and a pupil grid per wavelength), ``imaging`` (a whole frame:
atmosphere -> image, monochromatic or in a band). SI units throughout.
"""
