"""User-facing errors.

Every error a user can cause (a bad file, an unknown name, a failed check) is an ``MfrError`` whose
message names the file and the problem. The CLI turns it into a one-line message and exit code 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MfrError(Exception):
    """An error caused by input or environment, with a message meant for the user."""


class UnknownModelError(MfrError):
    pass


class CheckpointError(MfrError):
    pass


class SpecError(MfrError):
    pass


class ManifestError(MfrError):
    pass


class DataError(MfrError):
    pass


class OutputDirError(MfrError):
    pass


class ParityError(MfrError):
    pass


class EngineError(MfrError):
    """An engine that cannot be built or run: bad options, bad input, a failed build."""


class EngineUnavailable(EngineError):
    """An inference server that cannot be reached now (down, restarting, network gone): retry later."""


class EngineMismatchError(EngineError):
    """An engine built for another machine (backend version, GPU) than the one it is loaded on."""


class GalleryError(MfrError):
    """A gallery that cannot be opened or changed as asked: not a gallery, another model, unknown person."""


class GalleryUnavailable(GalleryError):
    """A gallery server that cannot be reached now (down, network gone): retry later; nothing was changed."""
