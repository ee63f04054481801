"""Large-gallery search: the approximate indexes against the exact search, on face-like galleries.

Galleries of tens of thousands of people are drawn from a two-covariance model fitted to real LFW
embeddings (``mfr.benchmarks.gallery_scale``), so genuine probes are as close to their templates, and
strangers as far, as real faces are. The exact search is the reference: an index may miss a person, but
never report a score the exact search would not, and where it finds the best person it reports the very
same score.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.benchmarks.gallery_scale import lfw_statistics
from mfr.cli.main import cli
from mfr.errors import MfrError
from mfr.recognition.ann import AnnSearch
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch
from mfr.recognition.searches import SEARCHES, auto_search, make_search
from mfr.runtime.embedder import FaceEmbedder


@pytest.fixture(scope="module")
def statistics(mobilefacenet_package, tmp_path_factory):
    return lfw_statistics(FaceEmbedder.open(mobilefacenet_package), tmp_path_factory.mktemp("cache"), photos=600)


@pytest.fixture(scope="module")
def gallery(statistics):
    """15,000 people with an unmasked and a (flagged) masked template each, ids not in row order."""
    rng = np.random.default_rng(1)
    rows, centres = statistics.draw(rng, 15_000, per_person=2)
    ids = np.repeat(rng.permutation(15_000) * 3 + 7, 2)
    masked = np.tile([False, True], 15_000)
    order = rng.permutation(len(rows))
    return TemplateMatrix(rows[order], ids[order], masked[order]), centres, ids[::2]


@pytest.mark.parametrize("backend", ["faiss-ivfpq", "usearch-hnsw"])
def test_an_index_finds_the_people_the_exact_search_finds_with_the_same_scores(statistics, gallery, backend):
    matrix, centres, people = gallery
    rng = np.random.default_rng(2)
    chosen = rng.choice(len(centres), 300, replace=False)
    genuine, _ = statistics.draw(rng, 300, centres=centres[chosen])
    strangers, _ = statistics.draw(rng, 100)
    probes = np.concatenate([genuine, strangers])
    masked = np.zeros(len(probes), bool)
    masked[150:300] = True  # half of the genuine probes wear masks: every template counts, masked ones lowered
    offsets = np.where(masked, 0.05, 0.0).astype(np.float32)
    exact = ExactSearch(matrix).top_people(probes, masked, k=2, masked_template_offset=offsets)
    index = AnnSearch(matrix, SEARCHES[backend].index_type)
    found = index.top_people(probes, masked, k=2, masked_template_offset=offsets)
    assert index.templates_searched(False) == 15_000 and index.templates_searched(True) == 30_000
    assert (exact.person_ids[:300, 0] == people[chosen]).all()  # the reference itself names the right people
    agree = found.person_ids[:, 0] == exact.person_ids[:, 0]
    assert agree[:300].mean() >= 0.99, agree[:300].mean()
    np.testing.assert_allclose(found.scores[agree, 0], exact.scores[agree, 0], atol=1e-5)
    assert (found.scores[:, 0] <= exact.scores[:, 0] + 1e-5).all()  # never a better score than exists


def test_the_search_is_exact_below_the_threshold_and_an_index_above(gallery):
    matrix = gallery[0]
    assert isinstance(make_search(matrix), ExactSearch)  # 30k templates: below the default threshold
    assert isinstance(auto_search(matrix, threshold=10_000), AnnSearch)
    assert isinstance(make_search(matrix, "exact"), ExactSearch)
    with pytest.raises(MfrError, match="unknown gallery search 'annoy'; choose from auto, exact, faiss-ivfpq"):
        make_search(matrix, "annoy")
    with pytest.raises(MfrError, match="pgvector search runs in a PostgreSQL gallery"):
        make_search(matrix, "pgvector")


def test_bench_gallery_measures_every_search_against_a_real_pgvector(mobilefacenet_package, postgres_server,
                                                                     tmp_path):
    url = postgres_server.database("bench")
    out = tmp_path / "gallery.json"
    result = CliRunner().invoke(cli, ["bench", "gallery", "--model", str(mobilefacenet_package), "--sizes", "2e3",
                                      "--probes", "50", "--lfw-photos", "600", "--postgres", url, "--json", str(out),
                                      "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    methods = [r["method"] for r in report["rows"]]
    assert methods == ["exact"] + ["faiss-ivfpq"] * 4 + ["usearch-hnsw"] * 4 + ["pgvector"] * 4
    assert all(r["templates"] == 2000 and r["p95_ms"] >= r["p50_ms"] > 0 for r in report["rows"])
    assert report["rows"][0]["recall_at_1"] == 1.0
    best = {m: max(r["recall_at_1"] for r in report["rows"] if r["method"] == m) for m in methods}
    assert min(best.values()) >= 0.95, best
    assert "synthetic" in report["data"] and report["machine"]["instruction_set"]
