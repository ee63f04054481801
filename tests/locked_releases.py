"""Which release of a library a test's expectation holds for: the one constraints/ci.txt locks.

A test that compares mfr's arithmetic with a library's (the CUDA kernel with OpenCV's warpAffine and
cvtColor, the TensorRT Q/DQ placement with ModelOpt's, the AVX2 saturation of ONNX Runtime's integer
kernels) asserts the exact agreement with the locked release, and a stated looser agreement with any other
release, saying which case it is in: a run with another release (`MFR_UNLOCKED=1 bash .ci/run`, or a
machine that did not install from the lock) reports the new release's differences as an
``OtherReleaseWarning`` in pytest's warnings summary instead of failing on them or hiding them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from constraints.check_installed import canonical, read_lock

LOCK = Path(__file__).resolve().parents[1] / "constraints" / "ci.txt"


class OtherReleaseWarning(UserWarning):
    """A library release other than the locked one was compared with; the message says how it differed."""


@dataclass(frozen=True)
class LibraryRelease:
    """A distribution's locked and installed versions."""

    distribution: str
    locked: str
    installed: str

    @property
    def is_locked(self) -> bool:
        return self.installed == self.locked

    def __str__(self) -> str:
        which = "the locked release" if self.is_locked else f"not the locked {self.locked}"
        return f"{self.distribution} {self.installed} ({which})"

    def report(self, finding: str) -> None:
        """Say, in pytest's warnings summary, how this other release compared."""
        warnings.warn(OtherReleaseWarning(f"{self}: {finding}"), stacklevel=2)


def library_release(distribution: str) -> LibraryRelease:
    pins, _ = read_lock(LOCK)
    name = canonical(distribution)
    if name not in pins:
        raise AssertionError(f"{LOCK} does not lock {distribution}; a test's expectation must name its release")
    return LibraryRelease(distribution, pins[name], metadata.version(distribution))
