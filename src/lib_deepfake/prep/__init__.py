"""Dataset building for lib-train and the official LIB code (``lib-prep``).

- :mod:`~lib_deepfake.prep.dataset`: labels.csv, the official list files, the dataset layout.
- :mod:`~lib_deepfake.prep.videos`: decode, detect, track and crop videos into PNG folders (``lib-prep videos``).
- :mod:`~lib_deepfake.prep.datasets`: FaceForensics++, Celeb-DF and DFDC as they ship -> the same crops
  (``lib-prep faceforensics | celebdf | dfdc``), with an import manifest.
- :mod:`~lib_deepfake.prep.blend` / :mod:`~lib_deepfake.prep.sbi`: self-blended pseudo-fakes (``lib-prep sbi``).
- :mod:`~lib_deepfake.prep.synth`: the offline synthetic demo corpus (``lib-prep synth``).
- :mod:`~lib_deepfake.prep.portraits`: public-domain portraits bundled in installed wheels.

Nothing heavy is imported here.
"""
