"""Backbone implementations. Each module registers its builders with :mod:`lib_deepfake.model.registry`."""
