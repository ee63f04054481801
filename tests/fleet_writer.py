"""One of several processes writing into one gallery at once (run by tests/test_fleet.py):

    python -m tests.fleet_writer URL WRITER ROUNDS OUT.npz

Each round enrols a new person (3 templates), adds a template to a person every writer shares, and
records 5 events, then records them again (a retry after a lost acknowledgement). What it wrote goes to
OUT.npz, for the test to compare with what the gallery holds.
"""

from __future__ import annotations

import sys

import numpy as np

from mfr.recognition.gallery import NewTemplate, open_gallery

FINGERPRINT, MODEL = "fleet-test-model", "random unit vectors"


def main() -> None:
    url, writer, rounds, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = np.random.default_rng(writer)
    crop = np.zeros((8, 8, 3), np.uint8)
    names, shas, embeddings, event_ids = [], [], [], []

    def template(name: str, sha: str) -> NewTemplate:
        e = rng.standard_normal(128).astype(np.float32)
        e /= np.linalg.norm(e)
        names.append(name)
        shas.append(sha)
        embeddings.append(e)
        return NewTemplate(e, crop, sha, masked=False)

    with open_gallery(url, create=True) as gallery:
        for i in range(rounds):
            person = f"w{writer}-{i}"
            gallery.add_templates(person, [template(person, f"{person}-{k}") for k in range(3)], FINGERPRINT, MODEL)
            gallery.add_templates("shared", [template("shared", f"shared-{writer}-{i}")], FINGERPRINT, MODEL)
            events = [{"event_id": f"{writer}-{i}-{j}", "time": "2026-01-01T00:00:00.000Z", "source": f"cam{writer}",
                       "kind": "identified", "name": person, "score": 0.9} for j in range(5)]
            gallery.add_events(events)
            gallery.add_events(events)
            event_ids += [e["event_id"] for e in events]
    np.savez(out, names=np.array(names), shas=np.array(shas), embeddings=np.stack(embeddings),
             event_ids=np.array(event_ids))


if __name__ == "__main__":
    main()
