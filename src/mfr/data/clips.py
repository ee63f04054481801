"""Synthetic test clips for the camera app, with ground truth, built from real face photos.

The clips are synthetic: real photos (aligned LFW faces, MFR2's real masked faces) pasted on a drawn
background, moving along straight paths with a changing scale: they enter and leave through the frame
edges, cross each other (the nearer face covers the other), pass behind a pillar (brief occlusion), and
change photo every ``photo_seconds`` (the same person, another look, as a real face changes pose and
expression). Some LFW faces get a synthetic mask from the project's mask generator; MFR2 people appear
with their real masks. Everything is drawn from ``seed``: the same arguments give the same clip.

Beside the MP4 (``clip.mp4``, MPEG-4 part 2, which pip's OpenCV can write) the generator writes
``truth.json`` (per frame: actor, identity, enrolled or stranger, masked, face box, and the share of the
face box left visible by the frame edges, nearer faces and the pillar) and ``enrol/``, one
folder per enrolled person holding photos that appear nowhere in the clip, for ``mfr gallery enroll-dir``.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mfr.augment.masks import MaskGenerator
from mfr.data.lfw import lfw_root
from mfr.data.mfr2 import read_mask_labels
from mfr.errors import DataError
from mfr.spec import ARCFACE_TEMPLATE_112

TRUTH_SCHEMA = "mfr.clip-truth/2"
# the face inside an aligned 112x112 crop (from the ArcFace landmark template: brows to chin, cheek to cheek)
_ALIGNED_FACE_BOX = (0.14, 0.16, 0.86, 0.98)
# an aligned crop is tight: it is padded by repeating its edge pixels (this share of its size on every side) so the
# face keeps its outline inside the pasted photo and the feathered edge falls on the padding
_ALIGNED_PAD = 0.3
# the face inside an MFR2 160x160 loose crop (MTCNN-style margin)
_LOOSE_FACE_BOX = (0.17, 0.14, 0.83, 0.92)


@dataclass(frozen=True)
class ClipConfig:
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    seed: int = 0
    known_lfw: int = 5  # enrolled LFW people (enrolled from 2 photos, shown with others)
    known_mfr2: int = 3  # enrolled MFR2 people (enrolled unmasked, shown with real masks)
    strangers: int = 12  # LFW people never enrolled
    appearances: int = 2  # tracks per person
    masked_share: float = 0.5  # LFW appearances with a synthetic mask
    concurrency: int = 4  # faces on screen at once, on average
    seconds_per_track: float = 3.5
    face_height: tuple[int, int] = (150, 220)  # face size range in pixels at 720p (scaled with the height)
    photo_seconds: float = 0.8
    pillar: bool = True


@dataclass
class Actor:
    actor: int
    identity: str
    enrolled: bool
    masked: bool
    photos: list[str]
    start: int  # first frame
    frames: int
    path: tuple[float, float, float, float]  # x0, y0, x1, y1 of the face centre (pixels)
    size: tuple[float, float]  # face height at start and end (pixels)
    loose: bool  # MFR2 loose crop (else aligned crop)


@dataclass
class Cast:
    enrol: dict[str, list[Path]] = field(default_factory=dict)
    shows: dict[str, list[tuple[Path, bool, bool]]] = field(default_factory=dict)  # photo, masked, loose


def _lfw_people(min_photos: int) -> dict[str, list[Path]]:
    root = lfw_root()
    people: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= min_photos:
            people[folder.name] = photos
    return people


def choose_cast(config: ClipConfig, rng: random.Random) -> tuple[Cast, list[tuple[str, bool]]]:
    """Who is in the clip: (name, enrolled) per person, their enrolment photos and the photos shown."""
    cast = Cast()
    people: list[tuple[str, bool]] = []
    rich = _lfw_people(6)
    known = rng.sample(sorted(rich), config.known_lfw)
    for name in known:
        photos = rich[name]
        cast.enrol[name] = photos[:2]
        cast.shows[name] = [(p, False, False) for p in photos[2:8]]
        people.append((name, True))
    labels = read_mask_labels()
    by_person: dict[str, dict[bool, list[Path]]] = defaultdict(lambda: {True: [], False: []})
    for path, label in sorted(labels.items()):
        by_person[path.parent.name][label != "no-mask"].append(path)
    usable = sorted(n for n, d in by_person.items() if len(d[False]) >= 1 and len(d[True]) >= 1)
    for name in rng.sample(usable, config.known_mfr2):
        cast.enrol[name] = by_person[name][False]
        cast.shows[name] = [(p, True, True) for p in by_person[name][True]]
        people.append((name, True))
    lfw_all = _lfw_people(1)
    others = sorted(set(lfw_all) - set(known))
    for name in rng.sample(others, config.strangers):
        cast.shows[name] = [(p, False, False) for p in lfw_all[name]]
        people.append((name, False))
    return cast, people


def _face_photo(path: Path, masked: bool, loose: bool, masks: MaskGenerator) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise DataError(f"{path}: unreadable image")
    if masked and not loose:
        image = masks.apply(image, np.array(ARCFACE_TEMPLATE_112) * [image.shape[1] / 112, image.shape[0] / 112],
                            key=f"clip/{path.name}")
    if not loose:
        pad = round(_ALIGNED_PAD * image.shape[0])
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return image


def _face_box_in_photo(loose: bool) -> tuple[float, float, float, float]:
    """The face's box as shares of the pasted photo's width and height."""
    if loose:
        return _LOOSE_FACE_BOX
    share = 1 + 2 * _ALIGNED_PAD
    x1, y1, x2, y2 = _ALIGNED_FACE_BOX
    return ((x1 + _ALIGNED_PAD) / share, (y1 + _ALIGNED_PAD) / share, (x2 + _ALIGNED_PAD) / share,
            (y2 + _ALIGNED_PAD) / share)


def _background(config: ClipConfig, rng: np.random.Generator) -> np.ndarray:
    h, w = config.height, config.width
    y = np.linspace(0, 1, h)[:, None, None]
    base = (60 + 90 * y + np.array([30, 10, 0])[None, None, :]) * np.ones((h, w, 3))
    image = base.astype(np.float32)
    for _ in range(14):  # shelves, doors, posters
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x2, y2 = x1 + int(rng.integers(40, w // 3)), y1 + int(rng.integers(20, h // 3))
        cv2.rectangle(image, (x1, y1), (x2, y2), [float(c) for c in rng.integers(30, 220, 3)], -1)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(image, (0, 0), 1.2), 0, 255).astype(np.uint8)


def _schedule(people: list[tuple[str, bool]], cast: Cast, config: ClipConfig,
              rng: random.Random) -> list[Actor]:
    """Appearances with staggered starts (about ``concurrency`` at once) and paths across the frame."""
    appearances = []
    for name, enrolled in people:
        shows = cast.shows[name]
        for k in range(config.appearances):
            if shows[0][2]:  # MFR2: real masks
                masked, photos, loose = True, [str(p) for p, _, _ in shows], True
            else:
                masked = enrolled and k % 2 == 1 or not enrolled and rng.random() < config.masked_share
                pool = [str(p) for p, _, _ in shows]
                half = pool[k::config.appearances] or pool
                photos, loose = half, False
            appearances.append((name, enrolled, masked, photos, loose))
    rng.shuffle(appearances)
    frames_per_track = int(config.seconds_per_track * config.fps)
    stagger = frames_per_track / config.concurrency
    scale = config.height / 720
    actors = []
    for i, (name, enrolled, masked, photos, loose) in enumerate(appearances):
        h0, h1 = (rng.uniform(*config.face_height) * scale for _ in range(2))
        y0, y1 = (rng.uniform(0.3, 0.7) * config.height for _ in range(2))
        left_to_right = rng.random() < 0.5
        margin = 0.35 * max(h0, h1)
        xs = (-margin, config.width + margin) if left_to_right else (config.width + margin, -margin)
        length = int(frames_per_track * rng.uniform(0.85, 1.15))
        actors.append(Actor(i + 1, name, enrolled, masked, photos, int(i * stagger), length,
                            (xs[0], y0, xs[1], y1), (h0, h1), loose))
    return actors


def _paste(frame: np.ndarray, photo: np.ndarray, centre: tuple[float, float], face_height: float,
           loose: bool) -> tuple[list[float], tuple[int, int, int, int]] | None:
    """Paste the photo scaled so its face is ``face_height`` tall, centred at ``centre``, with a feathered
    edge; the face box and the pasted rectangle in the frame, or None when none of the face is in it."""
    fx1, fy1, fx2, fy2 = _face_box_in_photo(loose)
    scale = face_height / ((fy2 - fy1) * photo.shape[0])
    w, h = max(2, round(photo.shape[1] * scale)), max(2, round(photo.shape[0] * scale))
    face_cx = (fx1 + fx2) / 2 * w
    face_cy = (fy1 + fy2) / 2 * h
    x0, y0 = round(centre[0] - face_cx), round(centre[1] - face_cy)
    resized = cv2.resize(photo, (w, h), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    alpha = np.zeros((h, w), np.float32)
    feather = max(2, round(0.06 * min(w, h)))
    cv2.rectangle(alpha, (feather, feather), (w - feather - 1, h - feather - 1), 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), feather / 2)[..., None]
    fh, fw = frame.shape[:2]
    ax1, ay1, ax2, ay2 = max(x0, 0), max(y0, 0), min(x0 + w, fw), min(y0 + h, fh)
    if ax1 >= ax2 or ay1 >= ay2:
        return None
    region = frame[ay1:ay2, ax1:ax2].astype(np.float32)
    src = resized[ay1 - y0:ay2 - y0, ax1 - x0:ax2 - x0].astype(np.float32)
    a = alpha[ay1 - y0:ay2 - y0, ax1 - x0:ax2 - x0]
    frame[ay1:ay2, ax1:ax2] = (a * src + (1 - a) * region).astype(np.uint8)
    box = [x0 + fx1 * w, y0 + fy1 * h, x0 + fx2 * w, y0 + fy2 * h]
    visible = [max(box[0], 0), max(box[1], 0), min(box[2], fw), min(box[3], fh)]
    if visible[0] >= visible[2] or visible[1] >= visible[3]:
        return None
    return [round(v, 1) for v in box], (ax1, ay1, ax2, ay2)


def _visible_shares(boxes: list[list[float]], rects: list[tuple[int, int, int, int]],
                    pillar: tuple[int, int] | None, size: tuple[int, int], step: int = 4) -> list[float]:
    """For faces pasted in this order (later ones cover earlier ones), the share of each face box that is
    in the frame and covered neither by a later photo nor by the pillar, on a grid of ``step`` pixels."""
    width, height = size
    owner = np.full((height // step + 1, width // step + 1), -1, np.int32)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        owner[y1 // step:(y2 + step - 1) // step, x1 // step:(x2 + step - 1) // step] = i
    if pillar is not None:
        owner[:, pillar[0] // step:(pillar[1] + step - 1) // step] = -1
    shares = []
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (round(v / step) for v in box)
        whole = max((x2 - x1) * (y2 - y1), 1)
        seen = owner[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
        shares.append(round(float((seen == i).sum()) / whole, 3))
    return shares


def clip_frames(clip: Path, every: int = 1) -> tuple[list[np.ndarray], list[list[dict[str, Any]]]]:
    """Every ``every``-th frame of a clip written by ``make_clip`` (uint8 BGR, decoded; only those kept: a
    720p clip of 40 s is 1.6 GB whole) and its truth, frame for frame."""
    truth = json.loads((clip / "truth.json").read_text())["truth"]
    capture = cv2.VideoCapture(str(clip / "clip.mp4"))
    frames: list[np.ndarray] = []
    for index in range(len(truth)):
        ok, image = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(image)
    capture.release()
    return frames, truth[::every][:len(frames)]


def make_clip(out: Path, config: ClipConfig = ClipConfig()) -> dict:
    """Write ``clip.mp4``, ``truth.json`` and ``enrol/`` into ``out``; returns the truth summary."""
    rng = random.Random(config.seed)
    cast, people = choose_cast(config, rng)
    actors = _schedule(people, cast, config, rng)
    masks = MaskGenerator(seed=config.seed)
    photos = {(a.actor, p): _face_photo(Path(p), a.masked, a.loose, masks) for a in actors for p in a.photos}
    background = _background(config, np.random.default_rng(config.seed))
    total = max(a.start + a.frames for a in actors) + int(config.fps / 2)
    out.mkdir(parents=True, exist_ok=True)
    enrol = out / "enrol"
    for name, files in cast.enrol.items():
        (enrol / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            (enrol / name / file.name).write_bytes(file.read_bytes())
    video = out / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), config.fps,
                             (config.width, config.height))
    if not writer.isOpened():
        raise DataError(f"{video}: OpenCV cannot write MPEG-4 video here")
    pillar = (int(0.62 * config.width), int(0.62 * config.width) + max(8, config.width // 28))
    truth_frames = []
    photo_frames = max(1, int(config.photo_seconds * config.fps))
    for index in range(total):
        frame = background.copy()
        on_screen = [a for a in actors if a.start <= index < a.start + a.frames]
        # the nearer (larger) face is drawn last: it covers the other where they cross
        placed: list[dict[str, Any]] = []
        boxes: list[list[float]] = []
        rects: list[tuple[int, int, int, int]] = []
        for actor in sorted(on_screen, key=lambda a: np.interp(index, [a.start, a.start + a.frames], a.size)):
            t = (index - actor.start) / max(actor.frames - 1, 1)
            centre = (actor.path[0] + t * (actor.path[2] - actor.path[0]),
                      actor.path[1] + t * (actor.path[3] - actor.path[1]))
            height = actor.size[0] + t * (actor.size[1] - actor.size[0])
            photo = actor.photos[((index - actor.start) // photo_frames) % len(actor.photos)]
            pasted = _paste(frame, photos[(actor.actor, photo)], centre, height, actor.loose)
            if pasted is not None:
                placed.append({"actor": actor.actor, "identity": actor.identity, "enrolled": actor.enrolled,
                               "masked": actor.masked, "box": pasted[0]})
                boxes.append(pasted[0])
                rects.append(pasted[1])
        if config.pillar:
            cv2.rectangle(frame, (pillar[0], 0), (pillar[1], config.height), (70, 70, 75), -1)
        shares = _visible_shares(boxes, rects, pillar if config.pillar else None,
                                 (config.width, config.height))
        for face, share in zip(placed, shares, strict=True):
            face["visible"] = share
        writer.write(frame)
        truth_frames.append(placed)
    writer.release()
    truth = {"schema": TRUTH_SCHEMA, "synthetic": True, "config": asdict(config), "frames": len(truth_frames),
             "fps": config.fps, "size": [config.width, config.height], "pillar_x": list(pillar),
             "actors": [asdict(a) for a in actors], "truth": truth_frames}
    (out / "truth.json").write_text(json.dumps(truth))
    return {"frames": len(truth_frames), "actors": len(actors), "enrolled_people": len(cast.enrol),
            "stranger_people": sum(1 for _, e in people if not e),
            "enrolled_tracks": sum(a.enrolled for a in actors), "stranger_tracks": sum(not a.enrolled for a in actors),
            "masked_tracks": sum(a.masked for a in actors)}
