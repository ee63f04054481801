"""The gallery searches a command can choose (``--search``): one registry line per search.

Every entry builds a ``TemplateSearch`` over a gallery snapshot (its ``TemplateMatrix``; the gallery itself
for searches that run in its database). ``auto`` is exact up to ``ANN_THRESHOLD`` templates and the
default approximate index above it (exact where faiss is not installed: slower, never wrong). The
approximate in-memory searches name their ``VectorIndex`` class, which ``mfr bench gallery`` sweeps
through its effort settings. A new search is a module with a ``TemplateSearch`` and a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mfr.errors import MfrError
from mfr.plugins import Registry
from mfr.recognition.ann import ANN_THRESHOLD, AnnSearch, FaissIvfPqIndex, IndexType, UsearchHnswIndex
from mfr.recognition.gallery import Gallery, TemplateMatrix
from mfr.recognition.search import ExactSearch, TemplateSearch

Builder = Callable[[TemplateMatrix, "Gallery | None"], TemplateSearch]


@dataclass(frozen=True)
class SearchEntry:
    build: Builder
    summary: str  # one line for --help
    index_type: IndexType | None = None  # approximate in-memory searches: the index, for benchmarks
    needs_server: bool = False  # runs in the gallery's database (mfr bench gallery needs --postgres)


def approximate(index_type: IndexType, summary: str) -> SearchEntry:
    """An in-memory index proposing candidates whose people are re-scored exactly (``ann.AnnSearch``)."""
    return SearchEntry(lambda matrix, _: AnnSearch(matrix, index_type), summary, index_type)


def auto_search(matrix: TemplateMatrix, gallery: Gallery | None = None,
                threshold: int = ANN_THRESHOLD) -> TemplateSearch:
    """Exact up to ``threshold`` templates, faiss-ivfpq above it (exact where faiss is not installed)."""
    if len(matrix.person_ids) < threshold:
        return ExactSearch(matrix)
    try:
        import faiss  # noqa: F401
    except ImportError:
        return ExactSearch(matrix)
    return AnnSearch(matrix, FaissIvfPqIndex)


def _pgvector(matrix: TemplateMatrix, gallery: Gallery | None) -> TemplateSearch:
    from mfr.recognition.gallery_postgres import PgvectorSearch, PostgresGallery

    if not isinstance(gallery, PostgresGallery):
        where = f"{gallery.location}" if gallery is not None else "no gallery"
        raise MfrError(f"the pgvector search runs in a PostgreSQL gallery (postgresql://...), not {where}")
    return PgvectorSearch.own_connection(gallery, set(matrix.names))


SEARCHES: Registry[SearchEntry] = Registry("gallery search")
SEARCHES.register("auto", SearchEntry(auto_search, f"exact up to {ANN_THRESHOLD:,} templates, faiss-ivfpq above"))
SEARCHES.register("exact", SearchEntry(lambda matrix, _: ExactSearch(matrix), "every template, one matrix product"))
SEARCHES.register("faiss-ivfpq", approximate(FaissIvfPqIndex, "faiss inverted file, 4-bit codes (mfr[ann])"))
SEARCHES.register("usearch-hnsw", approximate(UsearchHnswIndex, "usearch HNSW graph, int8 vectors"))
SEARCHES.register("pgvector", SearchEntry(_pgvector, "HNSW index in the PostgreSQL gallery itself",
                                          needs_server=True))


def make_search(matrix: TemplateMatrix, search: str = "auto", gallery: Gallery | None = None) -> TemplateSearch:
    """The search named ``search`` over ``matrix`` (``gallery``: the database it came from, for searches
    that run there)."""
    return SEARCHES.entry(search).build(matrix, gallery)
