"""Frames of several sources, one tick at a time, for one watch loop that serves several cameras.

Each source is read by its own thread into a one-frame mailbox; the loop takes, per tick, the frame of
every source that has one, so a slow or silent camera never holds the others back, and the faces of all
of them are embedded in one batch (``watch.tick``). A reader waits while its mailbox is full: a file
is read frame by frame without drops, a live source keeps only its newest frame (``LiveSource`` drops
the ones the loop had no time for, and counts them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from mfr.recognition.sources import Frame, FrameSource


class _Reader(threading.Thread):
    def __init__(self, index: int, source: FrameSource, ready: threading.Condition) -> None:
        super().__init__(name=f"read {source.name}", daemon=True)
        self.index, self.source, self.ready = index, source, ready
        self.frame: Frame | None = None
        self.done = False
        self.error: BaseException | None = None
        self.cancelled = False

    def run(self) -> None:
        try:
            for frame in self.source.frames():
                if frame is None:
                    continue
                with self.ready:
                    self.ready.wait_for(lambda: self.frame is None or self.cancelled)
                    if self.cancelled:
                        return
                    self.frame = frame
                    self.ready.notify_all()
        except BaseException as exc:  # handed to the loop, which raises it
            self.error = exc
        finally:
            with self.ready:
                self.done = True
                self.ready.notify_all()


class SourceMux:
    def __init__(self, sources: list[FrameSource]) -> None:
        self.sources = sources
        self._ready = threading.Condition()
        self._readers = [_Reader(i, s, self._ready) for i, s in enumerate(sources)]

    def start(self) -> None:
        for reader in self._readers:
            if not reader.is_alive() and not reader.done:
                reader.start()

    def take(self, timeout: float) -> list[tuple[int, Frame]] | None:
        """(source index, frame) of every source with a frame ready, waiting up to ``timeout`` seconds for
        one (an empty list when none came); None once every source ended and no frame is left."""
        with self._ready:
            self._ready.wait_for(lambda: any(r.frame is not None or r.done for r in self._readers),
                                 timeout=timeout)
            taken = [(r.index, r.frame) for r in self._readers if r.frame is not None]
            for r in self._readers:
                r.frame = None
            self._ready.notify_all()
            failed = next((r.error for r in self._readers if r.error is not None), None)
            ended = all(r.done for r in self._readers)
        if failed is not None:
            raise failed
        if ended and not taken:
            return None
        return [(i, f) for i, f in taken if f is not None]

    def ticks(self, idle_seconds: float = 0.5) -> Iterator[list[tuple[int, Frame]]]:
        """(source index, frame) of every source with a frame ready; an empty list after ``idle_seconds``
        without any (the loop's chance to write what sources reported). Ends when every source ended."""
        self.start()
        try:
            while (taken := self.take(idle_seconds)) is not None:
                yield taken
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the readers (each source's ``request_stop`` ends its frames soon)."""
        with self._ready:
            for reader in self._readers:
                reader.cancelled = True
            self._ready.notify_all()
        for source in self.sources:
            source.request_stop()
        for reader in self._readers:
            if reader.is_alive():
                reader.join(timeout=5)
