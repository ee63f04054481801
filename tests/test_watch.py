"""``mfr watch`` on synthetic clips made from real photos, with ground truth the code never reads.

The clip generator pastes real faces (LFW, MFR2's real masks, synthetic masks) on a drawn scene and
writes where each face is; the tests enrol the clip's known people from other photos, run the command,
and compare its events with that truth. A real RTSP server (GStreamer's, run by the system Python) and a
real MQTT broker (mosquitto) serve the live tests; they skip only where those programs are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.data.clips import make_clip
from mfr.recognition.events import EVENT_SCHEMA
from mfr.recognition.gallery import Gallery
from mfr.recognition.tracker import iou_matrix
from tests.conftest import SMALL_CLIP, free_port

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).parent / "servers" / "rtsp_server.py"
MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)


def run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip(small_clip: Path) -> Path:
    return small_clip


@pytest.fixture(scope="module")
def gallery(clip: Path, thresholded_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gallery") / "g.db"
    result = run("gallery", "enroll-dir", clip / "enrol", "--gallery", path, "--model", thresholded_package,
                 "--detector", "yunet")
    assert result.exit_code == 0, result.output
    return path


def names_by_appearance(events: list[dict], truth: dict) -> dict[int, set[str | None]]:
    """Each true appearance (actor) -> the names the events gave the face at that place and frame."""
    out: dict[int, set[str | None]] = defaultdict(set)
    for event in events:
        if event["kind"] not in ("identified", "identity_changed"):
            continue
        faces = truth["truth"][event["frame"]]
        if not faces:
            continue
        iou = iou_matrix(np.array([event["box"]]), np.array([f["box"] for f in faces]))[0]
        if iou.max() >= 0.3:
            out[faces[int(iou.argmax())]["actor"]].add(event["name"])
    return out


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_clip_generator_is_deterministic_and_says_it_is_synthetic(clip, tmp_path):
    truth = json.loads((clip / "truth.json").read_text())
    assert truth["synthetic"] is True and truth["size"] == [1280, 720]
    enrolled = {a["identity"] for a in truth["actors"] if a["enrolled"]}
    assert sorted(p.name for p in (clip / "enrol").iterdir()) == sorted(enrolled)
    shown = {Path(p).name for a in truth["actors"] for p in a["photos"]}
    assert not shown & {p.name for p in (clip / "enrol").rglob("*") if p.is_file()}  # enrol photos never shown
    again = tmp_path / "again"
    make_clip(again, SMALL_CLIP)
    assert json.loads((again / "truth.json").read_text())["truth"] == truth["truth"]


def test_watch_names_enrolled_people_and_never_a_stranger(clip, gallery, thresholded_package, tmp_path):
    events_file, stats_file, snapshots = tmp_path / "events.jsonl", tmp_path / "stats.json", tmp_path / "snaps"
    result = run("watch", "--source", clip / "clip.mp4", "--gallery", gallery, "--model", thresholded_package,
                 "--events", events_file, "--stats-json", stats_file, "--snapshots", snapshots, "--quiet",
                 "--record", tmp_path / "annotated.mp4")
    assert result.exit_code == 0, result.output
    events, truth = read_events(events_file), json.loads((clip / "truth.json").read_text())
    assert {e["schema"] for e in events} == {EVENT_SCHEMA}
    assert len({e["event_id"] for e in events}) == len(events)
    named = names_by_appearance(events, truth)
    actors = {a["actor"]: a for a in truth["actors"]}
    strangers = [a for a in actors.values() if not a["enrolled"]]
    enrolled = [a for a in actors.values() if a["enrolled"]]
    assert not [a["identity"] for a in strangers if named[a["actor"]] - {None}], named
    wrong = [a["identity"] for a in enrolled if named[a["actor"]] - {a["identity"], None}]
    right = [a for a in enrolled if a["identity"] in named[a["actor"]]]
    # never a wrong name; the share named correctly has its bar in `mfr bench watch` on the larger clip,
    # here a floor that a broken pipeline (alignment, thresholds, aggregation) falls through
    assert not wrong and len(right) >= 0.5 * len(enrolled), (len(right), len(enrolled), dict(named))
    started = [e for e in events if e["kind"] == "track_started"]
    ended = [e for e in events if e["kind"] == "track_ended"]
    assert sorted(e["track"] for e in started) == sorted(e["track"] for e in ended)
    assert all(Path(e["best_crop"]).is_file() for e in ended if e["best_crop"])
    stats = json.loads(stats_file.read_text())
    assert stats["frames"] == truth["frames"] and stats["source_stats"]["frames_skipped_unreadable"] == 0
    assert 0 < stats["embedded_share"] <= 0.2
    assert {"decode", "detect", "track", "align", "embed", "match", "capture_to_event"} <= set(stats["latency"])
    with Gallery.open(gallery) as g:
        stored = {e["event_id"] for e in g.events()}
    assert {e["event_id"] for e in events} <= stored
    assert (tmp_path / "annotated.mp4").stat().st_size > 10_000


def test_bad_sources_and_a_gallery_of_another_model_are_errors(clip, gallery, thresholded_package, tmp_path):
    common = ["--gallery", gallery, "--model", thresholded_package, "--quiet"]
    missing = run("watch", "--source", tmp_path / "nothing.mp4", *common)
    assert missing.exit_code == 1 and "nothing.mp4: no such file" in missing.output
    port = free_port()  # closed again: nothing listens there
    dead = run("watch", "--source", f"rtsp://127.0.0.1:{port}/stream", *common, "--read-timeout", "2")
    assert dead.exit_code == 1 and "cannot open" in dead.output
    camera = run("watch", "--source", "97", *common)
    assert camera.exit_code == 1 and "camera 97: cannot open" in camera.output
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((clip / "clip.mp4").read_bytes()[:100_000])  # the index (moov) is at the end
    broken = run("watch", "--source", truncated, *common)
    assert broken.exit_code == 1 and "truncated.mp4: not a video file" in broken.output
    other = tmp_path / "other.db"
    shutil.copy(gallery, other)
    with sqlite3.connect(other) as db:
        db.execute("UPDATE meta SET value = 'another-model:0123456789abcdef:01234567' WHERE key = 'fingerprint'")
    refused = run("watch", "--source", clip / "clip.mp4", "--gallery", other, "--model", thresholded_package)
    assert refused.exit_code == 1 and "mfr gallery reembed" in refused.output


def test_frames_the_decoder_cannot_read_are_skipped_and_counted(clip, gallery, thresholded_package, tmp_path):
    data = bytearray((clip / "clip.mp4").read_bytes())
    rng = np.random.default_rng(0)
    for start in (len(data) // 4, len(data) // 2):  # garbage over two stretches of the frame data
        data[start:start + 30_000] = rng.integers(0, 256, 30_000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    stats_file = tmp_path / "stats.json"
    result = run("watch", "--source", damaged, "--gallery", gallery, "--model", thresholded_package, "--quiet",
                 "--events", tmp_path / "e.jsonl", "--stats-json", stats_file, "--no-gallery-events")
    assert result.exit_code == 0, result.output
    stats = json.loads(stats_file.read_text())
    total = json.loads((clip / "truth.json").read_text())["frames"]
    assert stats["frames"] + stats["source_stats"]["frames_skipped_unreadable"] <= total
    assert stats["frames"] > total // 2


def _has_gstreamer_rtsp() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0 and shutil.which("gst-inspect-1.0") is not None


def _start_rtsp(port: int, video: Path) -> subprocess.Popen:
    server = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), str(port), str(video), "--loop"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def _wait_for(path: Path, predicate, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(path) if path.exists() else []
        if predicate(events):
            return events
        time.sleep(0.2)
    raise AssertionError(f"timed out; events so far: {[(e['kind'], e.get('state')) for e in events]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not _has_gstreamer_rtsp(), reason="needs GStreamer's RTSP server (python3-gi, "
                                                       "gir1.2-gst-rtsp-server-1.0; .ci/run installs them)")
def test_a_stream_that_goes_down_is_reconnected_and_nothing_is_lost(clip, gallery, thresholded_package, tmp_path):
    port, events_file = free_port(), tmp_path / "events.jsonl"
    server = _start_rtsp(port, clip / "clip.mp4")
    watch = subprocess.Popen([sys.executable, "-m", "mfr.cli.main", "watch", "--source",
                              f"rtsp://127.0.0.1:{port}/clip", "--gallery", str(gallery), "--model",
                              str(thresholded_package), "--events", str(events_file), "--read-timeout", "2",
                              "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = _wait_for(events_file, lambda ev: any(e["kind"] == "identified" and e["name"] for e in ev), 60)
        server.kill()
        server.wait()
        down = _wait_for(events_file, lambda ev: any(e.get("state") == "disconnected" for e in ev), 15)
        cpu_before, wall_before = _cpu_seconds(watch.pid), time.monotonic()
        time.sleep(3)
        idle_share = (_cpu_seconds(watch.pid) - cpu_before) / (time.monotonic() - wall_before)
        server = _start_rtsp(port, clip / "clip.mp4")
        restarted = time.monotonic()
        after = _wait_for(events_file, lambda ev: sum(e.get("state") == "connected" for e in ev) >= 2, 15)
        reconnect_seconds = time.monotonic() - restarted
        final = _wait_for(events_file, lambda ev: any(e["kind"] == "identified" and e["name"]
                                                      for e in ev[len(after):]), 60)
        assert watch.poll() is None  # never exited or hung up on the outage
        watch.send_signal(signal.SIGTERM)
        _, stderr = watch.communicate(timeout=30)
    finally:
        for process in (watch, server):
            if process.poll() is None:
                process.kill()
    assert watch.returncode == 0, stderr
    assert "watched rtsp://127.0.0.1" in stderr  # the summary
    assert reconnect_seconds <= 5.0 and idle_share < 0.25, (reconnect_seconds, idle_share)
    ids = [e["event_id"] for e in read_events(events_file)]
    # everything written before the outage is still there, in order, and more came after it
    assert [e["event_id"] for e in before] == ids[:len(before)] == [e["event_id"] for e in down][:len(before)]
    assert len(ids) >= len(final) > len(down)
    kinds = [e["kind"] for e in read_events(events_file)]
    assert kinds.count("track_started") == kinds.count("track_ended")  # SIGTERM ended every track


@pytest.mark.skipif(MOSQUITTO is None, reason="needs the mosquitto broker (.ci/run installs it)")
def test_events_are_published_to_a_real_mqtt_broker(clip, gallery, thresholded_package, tmp_path):
    import paho.mqtt.client as mqtt

    port = free_port()
    broker = subprocess.Popen([str(MOSQUITTO), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    received: list[dict] = []
    try:
        subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscriber.on_message = lambda _c, _u, message: received.append(
            {"topic": message.topic, **json.loads(message.payload)}) if message.topic != "mfr/status" else None
        for _ in range(50):
            try:
                subscriber.connect("127.0.0.1", port)
                break
            except OSError:
                time.sleep(0.1)
        subscriber.subscribe("mfr/#", qos=1)
        subscriber.loop_start()
        time.sleep(0.3)
        events_file = tmp_path / "events.jsonl"
        result = run("watch", "--source", clip / "clip.mp4", "--gallery", gallery, "--model", thresholded_package,
                     "--events", events_file, "--mqtt", f"127.0.0.1:{port}", "--quiet", "--no-gallery-events",
                     "--max-frames", "150")
        assert result.exit_code == 0, result.output
        written = read_events(events_file)
        deadline = time.monotonic() + 10
        while len(received) < len(written) and time.monotonic() < deadline:
            time.sleep(0.1)
        subscriber.loop_stop()
    finally:
        broker.kill()
    assert written and sorted(e["event_id"] for e in received) == sorted(e["event_id"] for e in written)
    assert all(e["topic"].endswith("/" + e["kind"]) for e in received)


class _CountingEmbedder:
    """The real embedder, with its batch sizes recorded (instrumentation, not a stand-in)."""

    def __init__(self, embedder) -> None:
        self.embedder, self.batches, self.embeddings, self.crops = embedder, [], [], []

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def embed_crops(self, crops, flip=True):
        self.batches.append(len(crops))
        self.crops.append(crops)
        self.embeddings.append(self.embedder.embed_crops(crops, flip=flip))
        return self.embeddings[-1]


@pytest.mark.parametrize("path", ["cpu-path", "kernel-path-on-the-host"])
def test_several_sources_share_one_embedding_call_per_tick_and_decide_as_alone(clip, gallery, thresholded_package,
                                                                                path, tmp_path):
    """One source or two, a face gets the same embedding and the same answers; on the GPU path too (the
    kernel's arithmetic compiled for the host, tests/host_gpu.py), where one source once skipped the flip-sum."""
    from mfr.recognition.decision import DecisionPolicy, Identifier
    from mfr.recognition.events import EventFactory
    from mfr.recognition.mask_state import MaskClassifier
    from mfr.recognition.sources import VideoFileSource
    from mfr.recognition.watch import Watcher, WatchOptions, tick
    from mfr.runtime.detectors import shipped_yunet
    from mfr.runtime.embedder import FaceEmbedder

    cpu = FaceEmbedder.open(thresholded_package)
    embedder = _CountingEmbedder(cpu if path == "cpu-path" else host_gpu_embedder(cpu, tmp_path))
    with Gallery.open(gallery) as g:
        identifier = Identifier.for_gallery(g, cpu, DecisionPolicy(), str(thresholded_package))
    classifier, options = MaskClassifier.load(), WatchOptions(stats_every=0)

    def watcher(name: str) -> Watcher:
        return Watcher(shipped_yunet(score_threshold=0.3, max_side=640), embedder, identifier, EventFactory(name),
                       options, None, classifier)

    source = VideoFileSource(clip / "clip.mp4")
    frames = [f for f, _ in zip(source.frames(), range(120), strict=False)]
    source.close()
    alone = watcher("alone")
    alone_events = [e for f in frames for e in alone.process(f)]
    alone_batches, embedder.batches = embedder.batches, []
    alone_embeddings, embedder.embeddings, embedder.crops = embedder.embeddings, [], []
    first, second = watcher("first"), watcher("second")
    together = [tick([(first, f), (second, f)]) for f in frames]

    def answers(events):
        return [(e["kind"], e.get("track"), e.get("name"), e.get("frame")) for e in events]

    assert alone_batches and len(embedder.batches) == len(alone_batches)  # one call per tick, not one per source
    assert embedder.batches == [2 * b for b in alone_batches]
    for one, two in zip(alone_embeddings, embedder.embeddings, strict=True):
        np.testing.assert_allclose(two[:len(one)], one, atol=1e-6)
        np.testing.assert_allclose(two[len(one):], one, atol=1e-6)
    for crops, embeddings in zip(embedder.crops, embedder.embeddings, strict=True):  # the CPU path's embedding
        np.testing.assert_allclose(embeddings, cpu.embed_crops(crops, flip=True), atol=1e-6)
    for index in (0, 1):
        assert answers([e for events in together for e in events[index]]) == answers(alone_events)


def host_gpu_embedder(cpu, directory: Path):
    """The embedder on its GPU path with the kernel's arithmetic on the host (tests/host_gpu.py)."""
    from mfr.runtime.embedder import FaceEmbedder
    from tests.host_gpu import BoundInputEngine, HostKernelPreprocessor, compile_host_kernel

    gpu = FaceEmbedder(BoundInputEngine(cpu.engine, max_batch=16), gpu_preprocessing=False)
    gpu.gpu = HostKernelPreprocessor(compile_host_kernel(directory), cpu.manifest.spec)
    return gpu


def test_watch_serves_several_cameras_with_per_source_stats(clip, gallery, thresholded_package, tmp_path):
    second = tmp_path / "door.mp4"
    shutil.copy(clip / "clip.mp4", second)
    events_file, stats_file = tmp_path / "events.jsonl", tmp_path / "stats.json"
    result = run("watch", "--source", clip / "clip.mp4", "--source", second, "--gallery", gallery, "--model",
                 thresholded_package, "--events", events_file, "--stats-json", stats_file, "--quiet")
    assert result.exit_code == 0, result.output
    truth = json.loads((clip / "truth.json").read_text())
    stats = json.loads(stats_file.read_text())
    assert [s["source"] for s in stats["sources"]] == [str(clip / "clip.mp4"), str(second)]
    assert all(s["frames"] == truth["frames"] for s in stats["sources"]) and stats["frames"] == 2 * truth["frames"]
    assert "embed" in stats["latency"] and all("embed" not in s["latency"] for s in stats["sources"])
    events = read_events(events_file)
    actors = {a["actor"]: a for a in truth["actors"]}
    for source in (str(clip / "clip.mp4"), str(second)):
        named = names_by_appearance([e for e in events if e["source"] == source], truth)
        assert named and not [a for a in actors.values() if not a["enrolled"] and named[a["actor"]] - {None}]
        assert not [a for a in actors.values() if a["enrolled"] and named[a["actor"]] - {a["identity"], None}]
    bad = run("watch", "--source", clip / "clip.mp4", "--source", second, "--gallery", gallery, "--model",
              thresholded_package, "--record", tmp_path / "x.mp4")
    assert bad.exit_code == 2 and "one --source" in bad.output


def test_bench_watch_judges_both_scores_on_one_clip_against_its_truth(clip, cohort_package, tmp_path):
    out = tmp_path / "bench.json"
    result = run("bench", "watch", "--model", cohort_package, "--clip", clip, "--score", "raw", "--score", "as-norm",
                 "--json", out)
    assert result.exit_code == 0, result.output
    truth = json.loads((clip / "truth.json").read_text())
    enrolled = sum(1 for a in truth["actors"] if a["enrolled"])
    runs = json.loads(out.read_text())["runs"]
    assert [(r["score_rule"], r["looks"]) for r in runs] == [("raw", 1), ("as-norm", 1)]
    for judged in (r["score"] for r in runs):
        assert judged["enrolled_appearances"] == enrolled
        assert judged["stranger_appearances"] == len(truth["actors"]) - enrolled
        assert judged["strangers_named"] == 0 and judged["face_frames_named_wrongly"] == 0
        assert judged["enrolled_named_correctly"] >= 0.5 * enrolled  # the floor of the watch test above
    refused = run("bench", "watch", "--model", cohort_package, "--clip", clip, "--seeds", "1,2")
    assert refused.exit_code != 0 and "--seeds chooses generated clips" in refused.output


def _session_events(clip: Path, gallery: Path, package: Path, pipeline, every: int = 1) -> list[dict]:
    from mfr.recognition.decision import DecisionPolicy, Identifier
    from mfr.recognition.events import EventFactory
    from mfr.recognition.mask_state import MaskClassifier
    from mfr.recognition.session import WatchSession
    from mfr.recognition.sources import VideoFileSource
    from mfr.recognition.watch import WatchOptions
    from mfr.runtime.detectors import shipped_yunet
    from mfr.runtime.embedder import FaceEmbedder

    embedder = FaceEmbedder.open(package)
    with Gallery.open(gallery) as g:
        identifier = Identifier.for_gallery(g, embedder, DecisionPolicy(), str(package))
    collected: list[dict] = []

    class Sink:
        def write(self, events: list[dict]) -> None:
            collected.extend(events)

        def close(self) -> None:
            pass

    detector = shipped_yunet(score_threshold=0.3, max_side=640, threads=1)
    with WatchSession(detector, embedder, identifier, WatchOptions(detect_every=every, stats_every=0), [Sink()],
                      MaskClassifier.load(), pipeline=pipeline) as session:
        session.add(VideoFileSource(clip / "clip.mp4"), EventFactory("clip"))
        session.run()
    return collected


@pytest.mark.parametrize("every", [1, 2])
def test_the_pipelined_loop_gives_the_sequential_loops_events_frame_for_frame(clip, gallery, thresholded_package,
                                                                             every):
    """A file is read on the stream's clock, every frame: detecting ahead in worker threads changes when a
    frame is detected, never what is decided about it."""
    from mfr.recognition.watch import Pipeline

    def answers(events: list[dict]) -> list[tuple]:
        return [(e["kind"], e.get("track"), e.get("name"), e.get("frame"), e.get("score"), e.get("box"))
                for e in events]

    sequential = _session_events(clip, gallery, thresholded_package, None, every)
    pipelined = _session_events(clip, gallery, thresholded_package, Pipeline(detect_workers=2, depth=2), every)
    assert any(e["kind"] == "identified" for e in sequential)
    assert answers(pipelined) == answers(sequential)


class _SlowDetector:
    """A real detector that takes ``delay`` seconds more per frame: more than the camera's frame interval."""

    def __init__(self, detector, delay: float) -> None:
        self.detector, self.delay = detector, delay

    def detect(self, image):
        time.sleep(self.delay)
        return self.detector.detect(image)


@pytest.mark.parametrize("pipelined", [False, True])
def test_overload_drops_frames_counts_them_and_keeps_latency_bounded(clip, gallery, thresholded_package, pipelined):
    """A camera-paced source and a loop slower than the camera: frames are dropped at the source and
    counted, every frame read is either processed or counted as dropped, and a frame's capture-to-processed
    time stays bounded by the queue's depth instead of growing with the length of the run."""
    from mfr.recognition.decision import DecisionPolicy, Identifier
    from mfr.recognition.events import EventFactory
    from mfr.recognition.session import WatchSession
    from mfr.recognition.sources import RealtimeFileSource
    from mfr.recognition.watch import Pipeline, WatchOptions
    from mfr.runtime.detectors import shipped_yunet
    from mfr.runtime.embedder import FaceEmbedder

    embedder = FaceEmbedder.open(thresholded_package)
    with Gallery.open(gallery) as g:
        identifier = Identifier.for_gallery(g, embedder, DecisionPolicy(), str(thresholded_package))
    source = RealtimeFileSource(clip / "clip.mp4")
    interval = 1 / source.fps
    delay = 3 * interval  # the loop keeps up with a third of the frames at most
    pipeline = Pipeline(detect_workers=1, depth=2) if pipelined else None
    detector = _SlowDetector(shipped_yunet(score_threshold=0.3, max_side=640, threads=1), delay)
    with WatchSession(detector, embedder, identifier, WatchOptions(stats_every=0), [], pipeline=pipeline) as session:
        watcher = session.add(source, EventFactory("camera"))
        session.run()
    stats = source.stats()
    truth = json.loads((clip / "truth.json").read_text())
    assert stats["frames_read"] == truth["frames"]
    assert stats["frames_dropped"] > truth["frames"] / 2
    # the loop's own mailbox may hold one frame the source already handed over; nothing else goes missing
    assert watcher.counts.frames + stats["frames_dropped"] == stats["frames_read"]
    latency = watcher.clock.summary()["capture_to_done"]
    in_flight = (pipeline.depth + 1) if pipeline else 1
    assert latency["p95_ms"] < 1000 * (in_flight + 2) * delay * 1.5, latency
