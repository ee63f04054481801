"""``mfr report``: the page built from the outputs of real runs (evaluation at both precisions on LFW and
MFR2, latency, the camera loop, a judged clip and a camera run with snapshots), rendered by headless
Chromium (Debian's, installed by ``.ci/run``) behind a proxy that counts every request leaving the page.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.main import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs Debian's)")
EVIL = "<script>document.title='owned'</script>"
ROOT = Path(__file__).resolve().parents[1]


def run(*args: object) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def outputs(calibrated, thresholded_package, small_clip, tmp_path_factory) -> tuple[list[Path], Path]:
    """The JSON of one small run of each command the report shows, and an event log with snapshots of a
    camera run in which one enrolled person is named ``EVIL``."""
    out = tmp_path_factory.mktemp("runs")
    package, _ = calibrated
    quick = ("--bootstrap", "0", "--no-cache")
    run("eval", "--model", thresholded_package, "--dataset", "lfw", "--folds", "1", *quick, "--report",
        out / "lfw.json")
    run("eval", "--model", package, "--dataset", "lfw", "--folds", "1", "--precision", "both", *quick,
        "--report", out / "lfw-both.json")
    run("eval", "--model", package, "--dataset", "mfr2", "--detector", "yunet", "--no-face", "center", "--precision",
        "both", *quick,
        "--report", out / "mfr2-both.json")
    from mfr.cli.export_cli import cli as export_cli

    fp32, int8 = out / "fp32-engine", out / "int8-engine"
    for engine_args in (["--package", thresholded_package, "--out", fp32],
                        ["--package", package, "--precision", "int8", "--out", int8]):
        built = CliRunner().invoke(export_cli, ["build-engine", *[str(a) for a in engine_args]])
        assert built.exit_code == 0, built.output
    run("bench", "latency", "--model", fp32, "--model", int8, "--batch", "1,4", "--rounds", "12",
        "--report", out / "latency.json")
    run("bench", "pipeline", "--model", fp32, "--resolutions", "480p", "--faces", "2", "--detect-every", "1,3",
        "--seconds", "2", "--repeats", "1", "--report", out / "pipeline.json")
    run("bench", "watch", "--model", fp32, "--clip", small_clip, "--report", out / "watch.json")
    gallery = out / "g.db"
    run("gallery", "enroll-dir", small_clip / "enrol", "--gallery", gallery, "--model", thresholded_package,
        "--detector", "yunet")
    first = sorted(p.name for p in (small_clip / "enrol").iterdir())[0]
    run("gallery", "rename", first, EVIL, "--gallery", gallery)
    run("watch", "--source", small_clip / "clip.mp4", "--gallery", gallery, "--model", thresholded_package,
        "--events", out / "events.jsonl", "--snapshots", out / "snapshots", "--stats-json", out / "stats.json",
        "--quiet")
    files = [out / name for name in ("lfw.json", "lfw-both.json", "mfr2-both.json", "latency.json", "pipeline.json",
                                     "watch.json", "events.jsonl", "stats.json")]
    committed = [ROOT / "docs" / "figures" / name for name in ("gallery-scale-in-memory.json", "cameras-720p.json")]
    return files + [package / "manifest.json", *committed], out


class RequestTrap:
    """A proxy that answers nothing and records the host of every request Chromium sends it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.hosts: set[str] = set()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            connection.settimeout(2)
            try:  # "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1"
                target = connection.recv(4096).split(b"\r\n")[0].decode(errors="replace").split(" ")[1]
                self.hosts.add(re.sub(r"^\w+://", "", target).split("/")[0].split(":")[0])
            except (OSError, IndexError):
                self.hosts.add("?")
            finally:
                connection.close()

    def __enter__(self) -> RequestTrap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()


def chromium(page: str, screenshot: Path | None = None) -> tuple[str, set[str]]:
    """The page's DOM after loading (or a screenshot of it), and the hosts of the requests it sent."""
    with RequestTrap() as trap:
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", f"--proxy-server=127.0.0.1:{trap.port}",
                 "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=3000", "--window-size=1280,2400"]
        action = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        result = subprocess.run([*flags, *action, page], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        time.sleep(0.2)  # the last connections recorded
        return result.stdout, set(trap.hosts)


@pytest.fixture(scope="module")
def browser_own_hosts() -> set[str]:
    """What Chromium itself contacts with an empty page (update and time services): not the page's doing."""
    return chromium("about:blank")[1]


@needs_chromium
def test_the_request_trap_sees_a_page_that_fetches(tmp_path, browser_own_hosts):
    """The check below could fail: a page that loads an image from the network is caught."""
    page = tmp_path / "fetching.html"
    page.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    assert chromium(page.as_uri())[1] - browser_own_hosts == {"example.invalid"}


@needs_chromium
def test_the_report_shows_every_section_offline_and_escapes_names(outputs, tmp_path, browser_own_hosts):
    files, out = outputs
    page = tmp_path / "report.html"
    built = run("report", *files, "--out", page)
    assert "accuracy, speed, camera, gallery, hardware" in built
    dom, hosts = chromium(page.as_uri())
    screenshot = tmp_path / "report.png"
    hosts |= chromium(page.as_uri(), screenshot)[1]
    assert hosts - browser_own_hosts == set()  # nothing left the page
    sections = dict(re.findall(r'<section id="(\w+)">(.*?)</section>', dom, re.S))
    assert set(sections) == {"accuracy", "speed", "camera", "gallery", "hardware"}
    expected_labels = {
        "accuracy": ["false accept rate (FAR)", "true accept rate (TAR)", "false reject rate (FNMR)",
                     "cosine of INT8 and FP32 embeddings of a face", "layers kept in float"],
        "speed": ["latency per call (ms)", "faces per second (at the median latency)",
                  "milliseconds of work per frame"],
        "camera": ["seconds since the first event", "milliseconds of work per frame"],
        "gallery": ["templates in the gallery", "search p95 (ms)", "recall@1"],
    }
    # ROC+DET, cosines, fallback; CDF, throughput, stages; the run's stages and its tracks
    plots = {"accuracy": 3, "speed": 3, "camera": 2, "gallery": 1}
    for section, labels in expected_labels.items():
        svgs = re.findall(r"<svg[^>]*>.*?</svg>", sections[section], re.S)
        assert len(svgs) == plots[section], section
        for svg in svgs:  # each plot has a size and drawn lines
            width, height = (float(v) for v in re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
            assert width > 100 and height > 100 and svg.count("<path") > 10
        for label in labels:
            assert f">{label}<" in sections[section], (section, label)
    # the ROC curves of FP32 and INT8 of both datasets, and the tables the docs render from the same JSON
    for legend in ("fp32, lfw U-U", "int8, lfw U-U", "fp32, mfr2 MFR2", "int8, mfr2 MFR2"):
        assert legend in sections["accuracy"]
    assert "accuracy FP32 → INT8" in sections["accuracy"] and "enrolled appearances named" in sections["camera"]
    assert "cameras held" in sections["speed"] and "AVX" in sections["hardware"]
    # the best crop of each named and unknown track, from the snapshots
    crops = re.findall(r'<img alt="([^"]*)" src="data:image/jpeg;base64,([^"]+)"', sections["camera"])
    assert crops and any(alt.startswith("unknown") for alt, _ in crops)
    for _, data in crops:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] >= 64 and image.shape[1] >= 64
    # a name is text: the script it spells is shown, never run
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e.get("name") == EVIL for e in events), "the renamed person was never named in the clip"
    assert "&lt;script&gt;document.title='owned'&lt;/script&gt;" in dom
    assert "<script" not in dom and "owned" not in re.search(r"<title>(.*?)</title>", dom).group(1)
    image = cv2.imread(str(screenshot))
    assert image is not None and image.shape[:2] == (2400, 1280) and float(image.std()) > 20


def test_report_names_a_file_it_cannot_read_and_lists_what_it_does_not_show(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    result = CliRunner().invoke(cli, ["report", str(broken), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and f"Error: {broken}: not JSON" in result.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"something": "else"}))
    result = CliRunner().invoke(cli, ["report", str(other), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "nothing to report" in result.output and str(other) in result.output
    assert not (tmp_path / "r.html").exists()


def test_a_track_line_says_when_it_started_was_contested_named_changed_and_ended():
    from mfr.benchmarks.page.sections import _tracks

    def event(second: float, kind: str, **fields: object) -> dict:
        return {"time": f"2026-01-01T00:00:{second:06.3f}Z", "source": "/cams/door.mp4", "kind": kind, "track": 3,
                **fields}

    events = [event(1.0, "track_started"), event(1.5, "identified", name=None, reason="ambiguous", masked=True),
              event(2.0, "identity_changed", name="Ada", reason="accepted", masked=True),
              event(4.25, "track_ended", name="Ada"), {**event(0.5, "track_started"), "track": 4},
              {**event(0.5, "stats"), "track": None}]
    first, second = _tracks(events)
    assert (first["label"], first["start"], first["end"]) == ("door.mp4 #4: unknown", 0.0, 0.0)
    assert second == {"label": "door.mp4 #3: Ada", "start": 0.5, "end": 3.75, "named_at": 1.0, "name": "Ada",
                      "masked": True, "changed_at": [1.5], "contested_at": [1.0]}
