"""Where frames come from: a video file, a folder of images, a USB camera, an RTSP or HTTP(S) stream.

Capture library: OpenCV's FFmpeg backend (``cv2.CAP_FFMPEG``), already a dependency of the runtime. It
reads files, RTSP and MJPEG over HTTP, and takes open and read timeouts
(``CAP_PROP_OPEN_TIMEOUT_MSEC``, ``CAP_PROP_READ_TIMEOUT_MSEC``) that bound every blocking call, so a dead
server cannot hang the process; PyAV would add a second FFmpeg build for the same. pip's OpenCV has no
GStreamer, so no GStreamer pipeline strings.

Files and folders are read frame by frame, every frame, in order: the same input gives the same events.
Their timestamps are the stream's own (frame index / FPS), so tracking and decisions do not depend on
how fast this machine is. Live sources (camera, ``rtsp://``, ``http(s)://``) are read by a thread into a
latest-frame slot: a frame not taken before the next arrives is dropped and counted, so latency never
builds up behind a slow consumer. A live source that fails after it has worked reconnects with
exponential backoff (0.5 s doubling to 30 s), sleeping in between (the process stays idle), and reports
each change as a status; one that cannot be opened at the start is an error, unless told to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from mfr.errors import DataError
from mfr.runtime.image_io import IMAGE_SUFFIXES, MAX_PIXELS, read_image_bgr

LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # uint8 BGR
    index: int  # frames read from the source so far (dropped ones included)
    time: float  # seconds on the source's clock (file: index / fps; live: monotonic capture time)
    captured: float  # time.monotonic() when the frame was read, for capture-to-event latency
    capture_ms: float  # waiting for and demuxing the frame (grab)
    decode_ms: float  # decoding it (retrieve)


@dataclass(frozen=True)
class SourceStatus:
    state: str  # "connected", "disconnected", "reconnecting", "ended"
    detail: str = ""


class FrameSource(Protocol):
    name: str
    live: bool

    def frames(self) -> Iterator[Frame | None]:
        """Frames until the source ends (a file) or ``close`` is called (a live source). A live source
        yields None about twice a second while no frame comes, so the caller can do its chores."""
        ...

    def stats(self) -> dict[str, int]:
        ...

    def request_stop(self) -> None:
        """Make ``frames`` end soon; safe to call from a signal handler (sets a flag, takes no lock)."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True)
class LiveOptions:
    """How sources are opened and read: timeouts and reconnection for cameras and streams, and the largest
    image a folder source decodes."""

    open_timeout: float = 5.0
    read_timeout: float = 5.0
    first_backoff: float = 0.5
    max_backoff: float = 30.0
    wait_for_source: bool = False  # keep trying when the first open fails, instead of an error
    max_pixels: int = MAX_PIXELS  # larger images of a folder are skipped unread (and counted)


def open_source(text: str, live_options: LiveOptions = LiveOptions(),
                on_status: Callable[[SourceStatus], None] = lambda _: None, realtime: bool = False) -> FrameSource:
    """The source a ``--source`` value names: a camera index (``0``), a URL, a folder or a video file
    (``realtime``: delivered at its frame rate, as a camera would)."""
    if text.isdigit():
        return LiveSource(int(text), f"camera {text}", live_options, on_status)
    if text.lower().startswith(LIVE_SCHEMES):
        return LiveSource(text, _redact(text), live_options, on_status)
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path, live_options.max_pixels)
    if path.is_file():
        return RealtimeFileSource(path) if realtime else VideoFileSource(path)
    raise DataError(f"{text}: no such file or folder (a source is a video file, a folder of images, a camera "
                    "index such as 0, or an rtsp:// or http(s):// URL)")


def _redact(url: str) -> str:
    """A URL without its password, for logs and events."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.split("@", 1)
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}"


class VideoFileSource:
    live = False

    def __init__(self, path: Path, max_bad_frames: int = 25) -> None:
        self.path, self.name = path, str(path)
        self.capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            raise DataError(f"{path}: not a video file OpenCV's FFmpeg can read")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        if not 1 <= self.fps <= 1000:
            self.fps = 25.0
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.max_bad_frames = max_bad_frames
        self._read = self._bad = 0
        self._stopping = False

    def frames(self) -> Iterator[Frame]:
        bad_in_a_row = 0
        while not self._stopping:
            start = time.perf_counter()
            grabbed = self.capture.grab()
            grabbed_at = time.perf_counter()
            ok, image = self.capture.retrieve() if grabbed else (False, None)
            decoded_at = time.perf_counter()
            index = self._read
            self._read += 1
            if not ok or image is None:
                # past the last frame, or a frame the decoder could not read: skip a few, then stop
                if self.frame_count and index >= self.frame_count or bad_in_a_row >= self.max_bad_frames:
                    self._read -= 1
                    return
                bad_in_a_row += 1
                self._bad += 1
                continue
            bad_in_a_row = 0
            yield Frame(image, index, index / self.fps, time.monotonic(), 1000 * (grabbed_at - start),
                        1000 * (decoded_at - grabbed_at))

    def stats(self) -> dict[str, int]:
        return {"frames_read": self._read - self._bad, "frames_skipped_unreadable": self._bad}

    def request_stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        self.capture.release()


class RealtimeFileSource:
    """A video file played as a camera would deliver it: a thread decodes every frame at the file's frame
    rate into a one-frame slot, whether or not the loop takes it; a frame still in the slot when the next
    is decoded is dropped and counted (``frames_dropped``), so a slow loop loses frames, never falls
    behind. Timestamps are the stream's (index / FPS), as for ``VideoFileSource``; ends at the file's end."""

    live = False

    def __init__(self, path: Path) -> None:
        self.reader = VideoFileSource(path)
        self.path, self.name, self.fps = path, str(path), self.reader.fps
        self._slot: Frame | None = None
        self._ended = False
        self._condition = threading.Condition()
        self._dropped = 0
        self._thread: threading.Thread | None = None

    def _play(self) -> None:
        started = time.monotonic()
        try:
            for frame in self.reader.frames():
                time.sleep(max(0.0, started + frame.index / self.fps - time.monotonic()))
                frame = Frame(frame.image, frame.index, frame.time, time.monotonic(), frame.capture_ms,
                              frame.decode_ms)
                with self._condition:
                    if self._slot is not None:
                        self._dropped += 1
                    self._slot = frame
                    self._condition.notify_all()
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def frames(self) -> Iterator[Frame | None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._play, name=f"play {self.name}", daemon=True)
            self._thread.start()
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._slot is not None or self._ended, timeout=0.5)
                frame, self._slot = self._slot, None
                ended = self._ended
            if frame is None and ended:
                return
            yield frame

    def stats(self) -> dict[str, int]:
        return {**self.reader.stats(), "frames_dropped": self._dropped}

    def request_stop(self) -> None:
        self.reader.request_stop()

    def close(self) -> None:
        self.reader.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.reader.close()


class FolderSource:
    """Images of a folder, in name order, as the frames of a 10 frames/s stream."""

    live = False
    fps = 10.0

    def __init__(self, path: Path, max_pixels: int = MAX_PIXELS) -> None:
        self.path, self.name, self.max_pixels = path, str(path), max_pixels
        self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        self._read = self._bad = 0
        self._stopping = False

    def frames(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            if self._stopping:
                return
            start = time.perf_counter()
            try:
                image = read_image_bgr(file, self.max_pixels)
            except DataError:
                self._bad += 1
                continue
            self._read += 1
            yield Frame(image, index, index / self.fps, time.monotonic(), 0.0, 1000 * (time.perf_counter() - start))

    def stats(self) -> dict[str, int]:
        return {"frames_read": self._read, "frames_skipped_unreadable": self._bad}

    def request_stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        pass


class LiveSource:
    """A camera or stream read by a background thread into a one-frame slot."""

    live = True

    def __init__(self, target: int | str, name: str, options: LiveOptions,
                 on_status: Callable[[SourceStatus], None]) -> None:
        self.target, self.name, self.options, self.on_status = target, name, options, on_status
        self._slot: Frame | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._counts = {"frames_read": 0, "frames_dropped": 0, "reconnects": 0, "read_failures": 0}
        self._index = 0
        capture = self._open()
        if capture is None and not options.wait_for_source:
            raise DataError(f"{name}: cannot open (no camera with this index, or the stream does not answer within "
                            f"{options.open_timeout:g} s); --wait-for-source keeps trying")
        self._thread = threading.Thread(target=self._run, args=(capture,), name=f"source {name}", daemon=True)
        self._thread.start()

    def _open(self) -> cv2.VideoCapture | None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(1000 * self.options.open_timeout),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(1000 * self.options.read_timeout)]
        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target, cv2.CAP_ANY, params)
        else:
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _run(self, capture: cv2.VideoCapture | None) -> None:
        backoff = self.options.first_backoff
        if capture is not None:
            self.on_status(SourceStatus("connected"))
        while not self._stop.is_set():
            if capture is None:
                self.on_status(SourceStatus("reconnecting", f"next try in {backoff:g} s"))
                if self._stop.wait(backoff):
                    break
                backoff = min(2 * backoff, self.options.max_backoff)
                capture = self._open()
                if capture is not None:
                    self._counts["reconnects"] += 1
                    backoff = self.options.first_backoff
                    self.on_status(SourceStatus("connected"))
                continue
            start = time.perf_counter()
            grabbed = capture.grab()
            grabbed_at = time.perf_counter()
            ok, image = capture.retrieve() if grabbed else (False, None)
            if not ok or image is None:
                self._counts["read_failures"] += 1
                capture.release()
                capture = None
                self.on_status(SourceStatus("disconnected", "no frame within the read timeout, or the stream "
                                                            "ended"))
                continue
            now = time.monotonic()
            frame = Frame(image, self._index, now, now, 1000 * (grabbed_at - start),
                          1000 * (time.perf_counter() - grabbed_at))
            self._index += 1
            with self._condition:
                if self._slot is not None:
                    self._counts["frames_dropped"] += 1
                self._slot = frame
                self._counts["frames_read"] += 1
                self._condition.notify()
        if capture is not None:
            capture.release()

    def frames(self) -> Iterator[Frame | None]:
        while not self._stop.is_set():
            with self._condition:
                self._condition.wait_for(lambda: self._slot is not None or self._stop.is_set(), timeout=0.5)
                frame, self._slot = self._slot, None
            yield frame

    def stats(self) -> dict[str, int]:
        return dict(self._counts)

    def request_stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=self.options.read_timeout + self.options.open_timeout + 1)
