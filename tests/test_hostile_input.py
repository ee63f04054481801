"""Hostile input never crashes: generated cases (Hypothesis, a fixed seed, a bounded count) from real files,
mutated (bytes flipped, cut short, spliced, the header rewritten, JSON values swapped) and from random
bytes, fed to every reader of outside files: images, a folder source, a video file, a package manifest, a
gallery export, a calibration folder. Each case ends as a result, a clear error (``MfrError``: the CLI's
``Error:`` line, exit 1), or a skipped-and-counted frame; never another exception, and within the
per-case deadline. A small PNG that declares 50,000 x 50,000 pixels is refused before decoding.

Hypothesis 6.170 (the lock's) generates the cases; ``derandomize`` fixes them, so CI sees the same ones.
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfr.cli.main import cli
from mfr.errors import MfrError
from mfr.paths import dataset_dir

LFW = dataset_dir("lfw-112x112")
MFR2 = dataset_dir("mfr2")


def cases(count: int) -> settings:
    return settings(max_examples=count, derandomize=True, database=None, deadline=timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_cases(check: Any, count: int, seen: list[int]) -> None:
    """Run a ``@given`` check that appends to ``seen`` per case, and make sure it saw ``count`` cases (a
    strategy that ran out of cases would pass on fewer)."""
    check()
    assert len(seen) >= count, f"{len(seen)} cases run, {count} expected"


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    """``original`` changed the ways damaged or crafted files differ from good ones, or random bytes."""
    size = len(original)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(original)
        for at, value in changes:
            data[at % size] = value
        return bytes(data)

    head = min(size, 64)  # where formats keep sizes, offsets and lengths
    return st.one_of(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1, max_size=12).map(flip),
        st.lists(st.tuples(st.integers(0, head - 1), st.integers(0, 255)), min_size=1, max_size=4).map(flip),
        st.integers(0, size - 1).map(lambda n: original[:n]),
        st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=256)).map(
            lambda cut: original[:cut[0]] + cut[1] + original[cut[0]:]),
        st.tuples(st.integers(0, size), st.integers(0, size)).map(
            lambda span: original[:min(span)] + original[max(span):]),
        st.binary(max_size=2048),
    )


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=12),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                     max_size=3), max_leaves=6)


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document (key paths), for swapping one value."""
    places = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            places += paths_in(inner, prefix + (key,))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            places += paths_in(inner, prefix + (i,))
    return places


def json_mutated(document: Any) -> st.SearchStrategy[bytes]:
    """``document`` with values swapped for others (or removed), as JSON text; or its text mutated."""
    places = [p for p in paths_in(document) if p]

    def swap(choice: tuple[list[int], list[Any], bool]) -> bytes:
        indices, values, remove = choice
        copy = json.loads(json.dumps(document))
        for index, value in zip(indices, values, strict=False):
            *parent_path, last = places[index % len(places)]
            parent = copy
            try:
                for key in parent_path:
                    parent = parent[key]
                if remove and isinstance(parent, dict):
                    parent.pop(last, None)
                else:
                    parent[last] = value
            except (KeyError, IndexError, TypeError):
                continue  # an earlier swap changed the shape above this place
        return json.dumps(copy).encode()

    text = json.dumps(document).encode()
    return st.one_of(
        st.tuples(st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
                  st.lists(json_values(), min_size=1, max_size=3), st.booleans()).map(swap),
        mutated(text))


def an_mfr_error_or(check: Any, call: Any) -> None:
    """Run ``call``: it returns something ``check`` accepts, or raises an ``MfrError``."""
    try:
        result = call()
    except MfrError as exc:
        assert str(exc).strip()
        return
    check(result)


def cli_result(args: list[str]) -> Any:
    """Run mfr with ``args``: it succeeds, or fails with exit 1 (its ``Error:`` line); never a traceback."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def bgr8(image: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


SCRATCH = Path(tempfile.mkdtemp(prefix="mfr-hostile-"))
FACE = cv2.imread(str(next(iter(sorted(LFW.rglob("*.jpg"))))))
ORIGINALS = {
    "lfw.jpg": next(iter(sorted(LFW.rglob("*.jpg")))).read_bytes(),
    "mfr2.png": next(iter(sorted(MFR2.rglob("*.png")))).read_bytes(),
    "face.bmp": cv2.imencode(".bmp", FACE)[1].tobytes(),
    "face.webp": cv2.imencode(".webp", FACE)[1].tobytes(),
    "progressive.jpg": cv2.imencode(".jpg", FACE, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
}


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_the_image_reader_decodes_or_names_the_problem(name):
    from mfr.runtime.image_io import read_image_bgr

    path = SCRATCH / name

    seen: list[int] = []

    @cases(240)
    @given(mutated(ORIGINALS[name]))
    def check(data: bytes) -> None:
        seen.append(1)
        path.write_bytes(data)
        an_mfr_error_or(bgr8, lambda: read_image_bgr(path))

    run_cases(check, 240, seen)


def test_a_folder_source_skips_and_counts_what_it_cannot_read():
    from mfr.recognition.sources import FolderSource

    folder = SCRATCH / "frames"

    seen: list[int] = []

    @cases(100)
    @given(st.lists(mutated(ORIGINALS["lfw.jpg"]), min_size=1, max_size=3))
    def check(files: list[bytes]) -> None:
        seen.append(1)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for i, data in enumerate(files):
            (folder / f"{i:02d}.jpg").write_bytes(data)
        source = FolderSource(folder)
        frames = list(source.frames())
        for frame in frames:
            bgr8(frame.image)
        stats = source.stats()
        assert stats["frames_read"] == len(frames) and stats["frames_read"] + stats[
            "frames_skipped_unreadable"] == len(files)

    run_cases(check, 100, seen)


def test_a_video_file_is_read_to_its_end_or_refused():
    from mfr.recognition.sources import VideoFileSource

    clip = SCRATCH / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 96))
    for k in range(8):
        writer.write(np.roll(cv2.resize(FACE, (96, 96)), k * 4, axis=1))
    writer.release()
    original = clip.read_bytes()
    path = SCRATCH / "mutated.mp4"

    seen: list[int] = []

    @cases(300)
    @given(mutated(original))
    def check(data: bytes) -> None:
        seen.append(1)
        path.write_bytes(data)

        def play() -> tuple[int, dict[str, int]]:
            source = VideoFileSource(path)
            try:
                frames = [frame for _, frame in zip(range(200), source.frames(), strict=False)]
            finally:
                source.close()
            for frame in frames:
                assert frame.image.dtype == np.uint8 and frame.image.ndim == 3
            return len(frames), source.stats()

        def counted(result: tuple[int, dict[str, int]]) -> None:
            frames, stats = result
            assert stats["frames_read"] == frames and stats["frames_skipped_unreadable"] >= 0

        an_mfr_error_or(counted, play)

    run_cases(check, 300, seen)


def test_a_crafted_manifest_is_read_or_refused_by_name(thresholded_package):
    package = SCRATCH / "package"
    shutil.copytree(thresholded_package, package, ignore=shutil.ignore_patterns("*.onnx"))
    original = json.loads((package / "manifest.json").read_text())

    seen: list[int] = []

    @cases(500)
    @given(json_mutated(original))
    def check(data: bytes) -> None:
        seen.append(1)
        (package / "manifest.json").write_bytes(data)
        result = cli_result(["info", str(package), "--json"])
        if result.exit_code == 1:
            assert result.output.startswith("Error: ") and str(package) in result.output, result.output

    run_cases(check, 500, seen)


@pytest.fixture(scope="module")
def export_file() -> bytes:
    """A real gallery export: two people, each with a template (a real face crop) and one a negative."""
    from mfr.recognition.gallery import Gallery, NewTemplate
    from mfr.recognition.portable import export_gallery

    rng = np.random.default_rng(0)
    gallery = SCRATCH / "source.db"
    with Gallery.open(gallery, create=True) as g:
        for name in ("Ada", "Bob"):
            embedding = rng.standard_normal(128).astype(np.float32)
            g.add_templates(name, [NewTemplate(embedding / np.linalg.norm(embedding), FACE, name * 8, False)],
                            "fingerprint", "model")
        g.add_negative("Ada", embedding / np.linalg.norm(embedding), FACE, "photo", "fingerprint", "model")
        export_gallery(g, SCRATCH / "export.json")
    return (SCRATCH / "export.json").read_bytes()


def test_a_crafted_gallery_export_is_imported_whole_or_refused_with_nothing_written(export_file):
    from mfr.recognition.gallery import Gallery

    document = json.loads(export_file)
    path, empty, gallery = SCRATCH / "import.json", SCRATCH / "empty.db", SCRATCH / "target.db"
    with Gallery.open(empty, create=True):
        pass
    seen: list[int] = []

    @cases(500)
    @given(json_mutated(document))
    def check(data: bytes) -> None:
        seen.append(1)
        path.write_bytes(data)
        shutil.copy(empty, gallery)  # each case imports into a new, empty gallery
        result = cli_result(["gallery", "import", str(path), "--gallery", str(gallery)])
        if result.exit_code == 1:
            assert result.output.startswith(f"Error: {path}"), result.output
            assert gallery.read_bytes() == empty.read_bytes()  # refused before anything was written
        else:
            with Gallery.open(gallery) as g:
                for row in g.db.execute("SELECT embedding, crop_png FROM templates").fetchall():
                    assert abs(float(np.linalg.norm(np.frombuffer(row[0], np.float32))) - 1) < 1e-3
                    assert cv2.imdecode(np.frombuffer(row[1], np.uint8), cv2.IMREAD_COLOR) is not None

    run_cases(check, 500, seen)


def test_a_calibration_folder_with_damaged_images_is_refused_naming_one(mobilefacenet_package):
    from mfr.calibration.data import MIN_IMAGES, load_calibration_set
    from mfr.manifest import load_manifest

    spec = load_manifest(mobilefacenet_package).spec
    folder = SCRATCH / "calibration"
    folder.mkdir()
    faces = sorted(LFW.rglob("*.jpg"))[:MIN_IMAGES]
    for i, face in enumerate(faces):
        shutil.copy(face, folder / f"{i:02d}.jpg")
    original = faces[0].read_bytes()

    seen: list[int] = []

    @cases(60)
    @given(st.integers(0, MIN_IMAGES - 1), mutated(original))
    def check(index: int, data: bytes) -> None:
        seen.append(1)
        target = folder / f"{index:02d}.jpg"
        target.write_bytes(data)
        try:
            def good(result: Any) -> None:
                assert result.inputs.shape == (MIN_IMAGES, 3, spec.input_size[0], spec.input_size[1])
                assert np.all(np.isfinite(result.inputs))

            an_mfr_error_or(good, lambda: load_calibration_set(spec, MIN_IMAGES, 0.0, calib_dir=folder))
        finally:
            shutil.copy(faces[index], target)

    run_cases(check, 60, seen)


def _bomb(width: int, height: int) -> bytes:
    """A PNG of a few kilobytes declaring ``width`` x ``height`` grey pixels: the first rows of zeros."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * ((width + 1) * 64), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


# the peak resident memory of this process alone (VmHWM; ru_maxrss would count the parent's at the fork)
BOMB = r"""
import re, sys
from pathlib import Path
from mfr.errors import DataError
from mfr.runtime.image_io import read_image_bgr
try:
    read_image_bgr(sys.argv[1])
    print("decoded")
except DataError as exc:
    print("refused:", exc)
print(int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) // 1024)
"""


@pytest.mark.parametrize("size", [(50_000, 50_000), (8_000, 6_000)])
def test_a_decompression_bomb_is_refused_before_decoding(size, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb(*size))
    assert path.stat().st_size < 100_000
    out = subprocess.run([sys.executable, "-c", BOMB, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    verdict, peak_mb = out.stdout.strip().splitlines()
    assert verdict == f"refused: {path}: a PNG image of {size[0]} x {size[1]} pixels, more than the 40,000,000 " \
                      f"allowed (--max-pixels)"
    assert int(peak_mb) < 200  # the whole process: Python, numpy, OpenCV and the reader


def test_max_pixels_refuses_larger_images_and_is_an_option_of_the_commands_that_read_photos(tmp_path):
    from mfr.recognition.sources import FolderSource
    from mfr.runtime.image_io import read_image_bgr

    photo = tmp_path / "frames" / "photo.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), np.zeros((120, 100, 3), np.uint8))
    assert read_image_bgr(photo, max_pixels=12_000).shape == (120, 100, 3)
    with pytest.raises(MfrError, match="100 x 120 pixels, more than the 11,999 allowed"):
        read_image_bgr(photo, max_pixels=11_999)
    source = FolderSource(photo.parent, max_pixels=11_999)
    assert list(source.frames()) == [] and source.stats()["frames_skipped_unreadable"] == 1
    for command in (["identify"], ["watch"], ["gallery", "enroll"], ["gallery", "enroll-dir"]):
        assert "--max-pixels" in CliRunner().invoke(cli, [*command, "--help"]).output


def test_base64_in_an_export_is_checked(export_file, tmp_path):
    document = json.loads(export_file)
    document["people"][0]["templates"][0]["embedding"] = base64.b64encode(b"\x00" * 512).decode()
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(document))
    result = CliRunner().invoke(cli, ["gallery", "import", str(path), "--gallery", str(tmp_path / "g.db")])
    assert result.exit_code == 1 and "not a unit-length vector" in result.output, result.output
    assert not (tmp_path / "g.db").exists()
