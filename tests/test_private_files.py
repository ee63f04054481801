"""Faces are biometric data: every file mfr writes that holds faces, templates or sightings is created
0600, and the folders it makes for them 0700, whatever the umask (``mfr.private``)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, os, sys
from pathlib import Path
from click.testing import CliRunner
os.umask(0)  # the most permissive umask: every file would be 0666, every folder 0777
from mfr.cli.main import cli
from mfr.recognition.events import EventFactory
from mfr.recognition.gallery import Gallery
clip, package, root = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
gallery = root / "galleries" / "site" / "g.db"
def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
run("gallery", "enroll-dir", clip / "enrol", "--gallery", gallery, "--model", package, "--detector", "yunet")
run("watch", "--source", clip / "clip.mp4", "--gallery", gallery, "--model", package, "--events",
    root / "out" / "events.jsonl", "--snapshots", root / "out" / "snapshots", "--record", root / "out" / "rec.mp4",
    "--max-frames", "90", "--quiet")
run("gallery", "export", root / "out" / "export.json", "--gallery", gallery)
run("gallery", "import", root / "out" / "export.json", "--gallery", root / "galleries" / "copy.db")
run("eval", "--model", package, "--dataset", "lfw", "--folds", "1", "--bootstrap", "0", "--cache-dir",
    root / "cache")
modes = {}
with Gallery.open(gallery) as g:  # open, with a write pending in its WAL: the -wal and -shm files exist
    g.add_events([EventFactory("check").make("stats", frames=0)])
    for path in sorted(gallery.parent.iterdir()):
        modes[str(path)] = os.stat(path).st_mode
for path in sorted(root.rglob("*")):
    modes.setdefault(str(path), os.stat(path).st_mode)
print(json.dumps(modes))
"""


def test_every_file_with_faces_is_private_under_umask_000(small_clip, thresholded_package, tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(small_clip), str(thresholded_package), str(tmp_path)],
                            capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    modes = {Path(path): mode for path, mode in json.loads(result.stdout.strip().splitlines()[-1]).items()}
    files = {p: m for p, m in modes.items() if stat.S_ISREG(m)}
    names = {p.name for p in files}
    # every kind of file: the gallery and its journal, events, snapshots, a recording, an export, a copy
    # imported from it, cached embeddings
    assert {"g.db", "g.db-wal", "g.db-shm", "events.jsonl", "rec.mp4", "export.json", "copy.db"} <= names, names
    assert any(p.suffix == ".jpg" for p in files) and any(p.suffix == ".npy" for p in files)
    readable = {str(p.relative_to(tmp_path)): oct(m & 0o777) for p, m in files.items() if m & 0o077}
    assert not readable, readable
    private_folders = [p for p, m in modes.items() if stat.S_ISDIR(m) and ("snapshots" in p.parts or "cache" in
                                                                           p.parts or "galleries" in p.parts)]
    assert private_folders
    open_folders = {str(p.relative_to(tmp_path)): oct(modes[p] & 0o777) for p in private_folders
                    if modes[p] & 0o077}
    assert not open_folders, open_folders


def test_gallery_check_names_what_others_can_read_and_exits_1(tmp_path):
    from click.testing import CliRunner

    from mfr.cli.main import cli
    from mfr.recognition.gallery import Gallery

    gallery, snapshots = tmp_path / "g.db", tmp_path / "snapshots"
    with Gallery.open(gallery, create=True):
        pass
    snapshots.mkdir(mode=0o700)
    (snapshots / "a.jpg").write_bytes(b"jpeg")
    (snapshots / "a.jpg").chmod(0o600)
    clean = CliRunner().invoke(cli, ["gallery", "check", "--gallery", str(gallery), "--snapshots", str(snapshots)])
    assert clean.exit_code == 0 and "private:" in clean.output, clean.output
    gallery.chmod(0o644)  # as a gallery made under umask 022 by an older mfr, or copied by hand
    (snapshots / "a.jpg").chmod(0o644)
    found = CliRunner().invoke(cli, ["gallery", "check", "--gallery", str(gallery), "--snapshots", str(snapshots)])
    assert found.exit_code == 1, found.output
    assert f"readable by others: {gallery} (mode 0644)" in found.output
    assert f"readable by others: {snapshots / 'a.jpg'} (mode 0644)" in found.output and "chmod 600" in found.output


def test_retention_prunes_old_events_and_snapshots_while_running_and_keeps_undelivered_ones(tmp_path):
    """Events and snapshots past the retention are deleted during operation (when events are written, at
    most every ``every_s``), newer ones kept; a replica's events still to be delivered are never deleted."""
    import os
    import time

    import numpy as np

    from mfr.recognition.events import EventFactory, GallerySink, Retention, SnapshotStore, utc_now
    from mfr.recognition.gallery import Gallery

    gallery = tmp_path / "replica.db"
    with Gallery.open(gallery, create=True):
        pass
    factory = EventFactory("door")

    def event(days_ago: float) -> dict:
        return {**factory.make("stats", frames=1), "time": utc_now(time.time() - days_ago * 86400)}

    old_delivered, old_queued, recent = event(40), event(40), event(1)
    with Gallery.open(gallery) as g:
        g.add_events([old_delivered], delivered=True)
        g.add_events([old_queued], delivered=False)  # the replica's outbox: not yet at the central gallery
    snapshots = SnapshotStore(tmp_path / "snapshots", keep=100)
    crop = np.zeros((8, 8, 3), np.uint8)
    old_crop, new_crop = snapshots.save("old", crop), snapshots.save("new", crop)
    month_ago = time.time() - 31 * 86400
    os.utime(old_crop, (month_ago, month_ago))
    sink = GallerySink(gallery, queue=True, retention=Retention(events_days=30, snapshots_days=30, every_s=3600),
                       snapshots=snapshots)  # prunes once as it opens
    with Gallery.open(gallery) as g:
        ids = {e["event_id"] for e in g.events()}
    assert old_delivered["event_id"] not in ids and old_queued["event_id"] in ids
    assert not old_crop.exists() and new_crop.exists()
    sink.write([recent])
    with Gallery.open(gallery) as g:
        assert [e["event_id"] for e in g.undelivered_events()] == [old_queued["event_id"], recent["event_id"]]
        g.mark_delivered([old_queued["event_id"], recent["event_id"]])  # delivered: now it may go
    sink.close()  # prunes once more as it stops
    with Gallery.open(gallery) as g:
        assert [e["event_id"] for e in g.events()] == [recent["event_id"]]
    assert sink.pruner is not None and sink.pruner.pruned == {"events": 2, "snapshots": 1}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_gallery_prune_deletes_old_events_of_a_gallery(backend, tmp_path, request):
    import time

    from click.testing import CliRunner

    from mfr.cli.main import cli
    from mfr.recognition.events import EventFactory, utc_now
    from mfr.recognition.gallery import Gallery

    gallery = (str(tmp_path / "central.db") if backend == "sqlite" else
               request.getfixturevalue("postgres_server").database("prune"))
    factory = EventFactory("door")
    old, new = ({**factory.make("stats", frames=1), "time": utc_now(time.time() - days * 86400)} for days in (10, 2))
    with Gallery.open(gallery, create=True) as g:
        g.add_events([old, new])
    result = CliRunner().invoke(cli, ["gallery", "prune", "--gallery", str(gallery), "--events-older-than", "7"])
    assert result.exit_code == 0 and "deleted 1 events" in result.output, result.output
    with Gallery.open(gallery) as g:
        assert [e["event_id"] for e in g.events()] == [new["event_id"]]
