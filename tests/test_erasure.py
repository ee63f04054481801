"""Erasure: ``mfr gallery remove NAME`` leaves no byte of the person on the server or on a replica.

The main test runs the real chain (enrolment into PostgreSQL, ``mfr watch`` from a replica with
snapshots, removal, sync) and then reads the database's own files and the replica's files for the
person's embedding, crop and event bytes, after checking that the same search finds them before. The
others erase sightings only, and survive a SIGKILL between the commit and the file deletions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.recognition.events import EventFactory, utc_now
from mfr.recognition.gallery import Gallery, NewTemplate


def run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def files_holding(folders: list[Path], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Which needles occur in which files under ``folders`` (every byte of every file is read)."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            for key, needle in needles.items():
                if needle in data:
                    found.setdefault(key, []).append(path.name)
    return found


def person_bytes(gallery: str, name: str) -> dict[str, bytes]:
    """Byte strings that belong to ``name`` only: each template's embedding, and 32-byte runs every 499
    bytes of their crops (a crop is larger than a database page, so it is stored in pieces: most runs lie
    within one)."""
    needles: dict[str, bytes] = {}
    with Gallery.open(gallery) as g:
        rows = g.db.execute("SELECT t.id, t.embedding, t.crop_png FROM templates t JOIN people p ON p.id = "
                            "t.person_id WHERE p.name = ?", (name,)).fetchall()
    for row_id, embedding, crop in rows:
        needles[f"embedding {row_id}"] = bytes(embedding)
        crop = bytes(crop)
        for at in range(100, len(crop) - 32, 499):
            needles[f"crop {row_id} @{at}"] = crop[at:at + 32]
    return needles


def test_a_removed_person_leaves_no_byte_on_the_server_or_a_replica(postgres_server, small_clip, thresholded_package,
                                                                    tmp_path):
    url = postgres_server.database("erasure")
    assert run("gallery", "enroll-dir", small_clip / "enrol", "--gallery", url, "--model", thresholded_package,
               "--detector", "yunet").exit_code == 0
    device, log = tmp_path / "device", tmp_path / "events.jsonl"
    replica, snapshots = device / "replica.db", device / "snapshots"
    watched = run("watch", "--source", small_clip / "clip.mp4", "--gallery", url, "--gallery-replica", replica,
                  "--sync-every", "0.5", "--model", thresholded_package, "--snapshots", snapshots, "--events", log,
                  "--quiet")
    assert watched.exit_code == 0, watched.output
    events = [json.loads(line) for line in log.read_text().splitlines()]
    ended = [e for e in events if e["kind"] == "track_ended" and e["name"] and e["best_crop"]]
    assert ended, "no named track with a snapshot: nothing to erase"
    name = max({e["name"] for e in ended}, key=lambda n: sum(e.get("name") == n for e in events))
    tracks = {e["track"] for e in events if name in (e.get("name"), e.get("previous_name"))}
    theirs = [e for e in events if e.get("track") in tracks]
    others = [e for e in events if e.get("track") not in tracks and e.get("track") is not None]
    their_snapshots = [Path(e["best_crop"]) for e in theirs if e["kind"] == "track_ended" and e["best_crop"]]
    other_snapshots = [Path(e["best_crop"]) for e in others if e["kind"] == "track_ended" and e["best_crop"]]
    assert other_snapshots and all(p.is_file() for p in their_snapshots + other_snapshots)
    # the device also holds sightings not yet delivered (recorded while the server was out of reach)
    queued = EventFactory("door")
    with Gallery.open(replica) as outbox:
        outbox.add_events([queued.make("identified", track=1, name=name, score=0.9),
                           queued.make("track_ended", track=1, name=name, best_crop=None)], delivered=False)
    needles = person_bytes(url, name)
    needles |= {f"event {e['event_id']}": e["event_id"].encode() for e in theirs}
    needles |= {f"snapshot {p.name}": p.read_bytes() for p in their_snapshots}
    with Gallery.open(url) as central:
        database = central.db.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        people_before = {p.name: (p.templates, p.negatives) for p in central.people()}
    server_files = postgres_server.data_dir / "base" / str(database)
    postgres_server.checkpoint()
    before = files_holding([server_files], needles)
    # the search finds what is there before the removal: every embedding and event, most runs of each crop
    assert {k for k in needles if k.startswith(("embedding", "event"))} <= set(before), before
    crops = {k.split(" @")[0] for k in needles if k.startswith("crop")}
    assert all(sum(k.startswith(c + " @") for k in before) > 0.8 * sum(k.startswith(c + " @") for k in needles)
               for c in crops)
    assert {k for k in needles if k.startswith(("embedding", "event"))} <= set(files_holding([replica.parent],
                                                                                               needles))

    removed = run("gallery", "remove", name, "--gallery", url, "--events-log", log, "--json")
    assert removed.exit_code == 0, removed.output
    report = json.loads(removed.output)
    assert report["removed"] and report["templates"] == people_before[name][0] and report["events"] >= len(theirs)
    assert report["log_lines"] == {str(log): len(theirs)}
    synced = run("gallery", "sync", "--gallery", url, "--replica", replica, "--json")
    assert synced.exit_code == 0 and json.loads(synced.output)["erasures"] == 1, synced.output

    postgres_server.checkpoint()
    assert files_holding([server_files], needles) == {}
    assert files_holding([replica.parent], needles) == {}  # the replica, its journal and the snapshots
    assert not any(p.exists() for p in their_snapshots) and all(p.is_file() for p in other_snapshots)
    remaining = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event_id"] for e in remaining] == [e["event_id"] for e in events if e not in theirs]
    for location in (url, replica):  # everyone else is untouched
        with Gallery.open(location) as g:
            assert {p.name: (p.templates, p.negatives) for p in g.people()} == {
                n: c for n, c in people_before.items() if n != name}
            stored = {e["event_id"] for e in g.events()}
            assert {e["event_id"] for e in others} <= stored
            assert not stored & {e["event_id"] for e in theirs}


def _template(rng: np.random.Generator, photo: str) -> NewTemplate:
    embedding = rng.standard_normal(128).astype(np.float32)
    return NewTemplate(embedding / np.linalg.norm(embedding), rng.integers(0, 255, (112, 112, 3), np.uint8), photo,
                       False)


def _ada_and_bob(tmp_path: Path, seed: int) -> tuple[Path, Path]:
    """A gallery of Ada and Bob, one template each, and an empty snapshot folder beside it."""
    rng = np.random.default_rng(seed)
    gallery, snapshots = tmp_path / "g.db", tmp_path / "snapshots"
    snapshots.mkdir()
    with Gallery.open(gallery, create=True) as g:
        g.add_templates("Ada", [_template(rng, "a1")], "fp", "model")
        g.add_templates("Bob", [_template(rng, "b1")], "fp", "model")
    return gallery, snapshots


def _track(factory: EventFactory, track: int, name: str, folder: Path | None, days_ago: float = 0.0) -> list[dict]:
    """One sighting as mfr watch records it: started, unknown at first, named, ended with its snapshot."""
    at = utc_now(time.time() - days_ago * 86400)
    snapshot = None
    if folder is not None:
        snapshot = folder / f"{factory.run_id}-track{track}.jpg"
        snapshot.write_bytes(b"\xff\xd8 a face \xff\xd9")
    events = [factory.make("track_started", track=track, box=[0, 0, 9, 9]),
              factory.make("identified", track=track, name=None, score=0.2),
              factory.make("identified", track=track, name=name, score=0.9),
              factory.make("track_ended", track=track, name=name, best_crop=snapshot and str(snapshot))]
    return [{**e, "time": at} for e in events]


def test_sightings_only_before_a_date_keep_the_enrolment_and_a_crafted_path_deletes_nothing(tmp_path):
    gallery, snapshots = _ada_and_bob(tmp_path, seed=0)
    factory = EventFactory("door")
    old, new, bob = (_track(factory, 1, "Ada", snapshots, days_ago=10), _track(factory, 2, "Ada", snapshots),
                     _track(factory, 3, "Bob", snapshots, days_ago=10))
    innocent = tmp_path / "innocent.jpg"
    innocent.write_bytes(b"not a snapshot of this track")
    crafted = {**factory.make("track_ended", track=4, name="Ada", best_crop=str(innocent)),
               "time": utc_now(time.time() - 9 * 86400)}
    with Gallery.open(gallery) as g:
        g.add_events(old + new + bob + [crafted])
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 5 * 86400))
    result = run("gallery", "remove", "Ada", "--gallery", gallery, "--before", cutoff)
    assert result.exit_code == 0, result.output
    assert "kept Ada's enrolment; erased 5 sightings and 1 snapshot files" in result.output
    with Gallery.open(gallery) as g:
        assert [p.name for p in g.people()] == ["Ada", "Bob"]
        assert [e["event_id"] for e in g.events()] == [e["event_id"] for e in new + bob]
    assert innocent.is_file()  # an event naming a file that is not its track's snapshot deletes nothing
    assert not Path(old[-1]["best_crop"]).exists() and Path(new[-1]["best_crop"]).is_file()
    assert Path(bob[-1]["best_crop"]).is_file()
    # --events-only: every sighting goes, the enrolment stays; then a full removal, and late sightings
    assert run("gallery", "remove", "Ada", "--gallery", gallery, "--events-only").exit_code == 0
    with Gallery.open(gallery) as g:
        assert [e["event_id"] for e in g.events()] == [e["event_id"] for e in bob]
        assert g.person("Ada").templates == 1
    assert run("gallery", "remove", "Ada", "--gallery", gallery).exit_code == 0
    late = _track(EventFactory("door"), 1, "Ada", None)  # from a device that had not yet heard of the removal
    with Gallery.open(gallery) as g:
        assert g.add_events(late) == 0 and [p.name for p in g.people()] == ["Bob"]
    nobody = run("gallery", "remove", "Nobody", "--gallery", gallery)
    assert nobody.exit_code == 1 and "no person named 'Nobody'" in nobody.output


def test_a_removal_killed_after_its_commit_is_finished_by_a_retry(tmp_path):
    """SIGKILL while the snapshot files are being deleted: the database change is committed and the files
    still to delete are recorded with it, so running the command again deletes the rest."""
    gallery, snapshots = _ada_and_bob(tmp_path, seed=1)
    factory = EventFactory("door")
    with Gallery.open(gallery) as g:
        g.add_events([e for track in range(4000) for e in _track(factory, track, "Ada", snapshots)]
                     + _track(factory, 9999, "Bob", snapshots))
    files = sorted(snapshots.glob("*-track*.jpg"))
    first, bobs = files[0], snapshots / f"{factory.run_id}-track9999.jpg"
    command = [sys.executable, "-m", "mfr.cli.main", "gallery", "remove", "Ada", "--gallery", str(gallery)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = [p for p in files if p.exists() and p != bobs]
    assert 0 < len(left) < 4000, f"the kill came too late to test anything ({len(left)} files left)"
    with Gallery.open(gallery) as g:
        assert g.integrity() == "ok" and [p.name for p in g.people()] == ["Bob"]
        assert int(g.db.execute("SELECT count(*) FROM pending_files").fetchone()[0]) >= len(left)
    retried = run("gallery", "remove", "Ada", "--gallery", gallery)
    assert retried.exit_code == 0, retried.output
    assert "Ada is not enrolled (erased before" in retried.output
    assert f"and {len(left)} snapshot files" in retried.output
    assert [p for p in files if p.exists()] == [bobs]
    with Gallery.open(gallery) as g:
        assert int(g.db.execute("SELECT count(*) FROM pending_files").fetchone()[0]) == 0
        assert {e.get("name") for e in g.events()} == {None, "Bob"}


@pytest.mark.parametrize("option", [["--before", "last week"], ["--events-log", "missing.jsonl"]])
def test_bad_removal_options_are_refused_before_anything_changes(tmp_path, option):
    rng = np.random.default_rng(2)
    gallery = tmp_path / "g.db"
    with Gallery.open(gallery, create=True) as g:
        g.add_templates("Ada", [_template(rng, "a1")], "fp", "model")
    result = run("gallery", "remove", "Ada", "--gallery", gallery, *option)
    assert result.exit_code == 2, result.output
    with Gallery.open(gallery) as g:
        assert [p.name for p in g.people()] == ["Ada"]
