"""Exception hierarchy shared by every subpackage.

The CLI turns any :class:`LibDeepfakeError` into a one-line message and exit code 1; everything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class LibDeepfakeError(Exception):
    """Base class for errors a user can act on (bad input, missing extra, mismatched artifact)."""


class MissingDependencyError(LibDeepfakeError, ImportError):
    """An optional dependency (an extra) is not installed or cannot be loaded."""


class CheckpointError(LibDeepfakeError):
    """A checkpoint cannot be read, is unsafe, or does not match the model it claims to hold."""


class ArtifactMismatchError(LibDeepfakeError):
    """An exported artifact was built for another library version, GPU or contract."""


class ContractError(LibDeepfakeError, ValueError):
    """Input to an engine or pipeline stage violates its documented tensor contract."""


class ParityError(LibDeepfakeError):
    """Two implementations of the same computation disagree beyond the tolerance."""


class VideoError(LibDeepfakeError):
    """A video cannot be probed or decoded; ``reason`` is a one-line, user-facing explanation."""


class DatasetError(LibDeepfakeError):
    """A training/preparation dataset is missing, malformed or inconsistent."""


class NotYetAvailableError(LibDeepfakeError):
    """A command or option that exists in the CLI but whose backend is not available in this build."""


class NativeLibraryError(LibDeepfakeError):
    """The native crop library (native/, built with CMake) failed: a CUDA error, or a library that cannot load."""
