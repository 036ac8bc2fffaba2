"""Readers for public deepfake datasets as they ship, and the importer that prepares them (``lib-prep
faceforensics | celebdf | dfdc``).

- :mod:`~lib_deepfake.prep.datasets.records`: the (path, label, split, group) records readers return; val hold-out.
- :mod:`~lib_deepfake.prep.datasets.faceforensics`, :mod:`~lib_deepfake.prep.datasets.celebdf`,
  :mod:`~lib_deepfake.prep.datasets.dfdc`: one pure reader per layout (lists files and reads the split files).
- :mod:`~lib_deepfake.prep.datasets.importer`: records -> ``lib-prep videos`` -> import manifest.

Nothing heavy is imported here.
"""
