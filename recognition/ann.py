"""Approximate search for large galleries: an HNSW index proposes candidates, the exact rule decides.

Above ``ANN_THRESHOLD`` templates the exact matrix product costs more than a camera's frame budget on a
small CPU (about 1 ms per 10k templates per probe). An HNSW graph (usearch by default, faiss as the
alternative; ``mfr bench gallery`` measured both) returns the ``candidates`` nearest templates of a
probe; every template of those candidates' people is then scored exactly, with the same mask rules
and offsets as ``ExactSearch``, so the decision rule sees exact scores and the only approximation is
which people are looked at. A person whose best template is outside the candidates is missed; recall@1
against exact search is what the benchmark reports.

The index is built from the gallery's template matrix when a decision rule is made (``make_search``);
the libraries are optional imports (the ``ann`` extra).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mfr.errors import MfrError
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch, PersonScores, TemplateSearch

ANN_THRESHOLD = 100_000  # templates; below it the exact search is fast enough and exact
ANN_BACKENDS = ("usearch", "faiss")


class VectorIndex(Protocol):
    """An inner-product HNSW index over rows 0..N-1."""

    def search(self, probes: np.ndarray, count: int) -> np.ndarray:
        """(Q, count) row numbers, nearest first; -1 where fewer were found."""
        ...

    def memory_bytes(self) -> int:
        ...


class UsearchIndex:
    def __init__(self, vectors: np.ndarray, connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 64, threads: int = 0) -> None:
        try:
            from usearch.index import Index
        except ImportError:
            raise MfrError("the approximate gallery index needs usearch: pip install 'mfr[ann]'") from None
        self.threads = threads
        self.index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=connectivity,
                           expansion_add=expansion_add, expansion_search=expansion_search)
        self.index.add(np.arange(len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors, np.float32),
                       threads=threads)

    def set_expansion(self, expansion_search: int) -> None:
        self.index.expansion_search = expansion_search

    def search(self, probes: np.ndarray, count: int) -> np.ndarray:
        matches = self.index.search(np.ascontiguousarray(probes, np.float32), count, threads=self.threads)
        keys = np.full((len(probes), count), -1, np.int64)
        if len(probes) == 1:  # usearch answers one probe with a flat result
            found = np.asarray(matches.keys, np.int64).reshape(-1)
            keys[0, :len(found)] = found
            return keys
        found = np.asarray(matches.keys, np.int64).reshape(len(probes), -1)
        valid = np.arange(found.shape[1])[None, :] < np.asarray(matches.counts).reshape(-1, 1)
        keys[:, :found.shape[1]] = np.where(valid, found, -1)
        return keys

    def memory_bytes(self) -> int:
        return int(self.index.memory_usage)


class FaissIndex:
    def __init__(self, vectors: np.ndarray, connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 64, threads: int = 0) -> None:
        try:
            import faiss
        except ImportError:
            raise MfrError("--ann faiss needs faiss: pip install faiss-cpu") from None
        self.faiss = faiss
        if threads:
            faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], connectivity, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = expansion_add
        self.index.hnsw.efSearch = expansion_search
        self.index.add(np.ascontiguousarray(vectors, np.float32))

    def set_expansion(self, expansion_search: int) -> None:
        self.index.hnsw.efSearch = expansion_search

    def search(self, probes: np.ndarray, count: int) -> np.ndarray:
        _, keys = self.index.search(np.ascontiguousarray(probes, np.float32), count)
        return np.asarray(keys, np.int64)

    def memory_bytes(self) -> int:
        # vectors, plus the graph's neighbour lists (int32 ids: 2M on level 0, M above, ~1/M of nodes)
        hnsw = self.index.hnsw
        return int(self.index.ntotal * (4 * self.index.d + 4 * len(self.faiss.vector_to_array(hnsw.neighbors))
                                        / max(self.index.ntotal, 1)))


def build_index(vectors: np.ndarray, backend: str = "usearch", connectivity: int = 16, expansion_add: int = 128,
                expansion_search: int = 64, threads: int = 0) -> UsearchIndex | FaissIndex:
    if backend not in ANN_BACKENDS:
        raise MfrError(f"unknown approximate index {backend!r}; choose one of {', '.join(ANN_BACKENDS)}")
    kind = UsearchIndex if backend == "usearch" else FaissIndex
    return kind(vectors, connectivity, expansion_add, expansion_search, threads)


class AnnSearch:
    """``TemplateSearch`` over an HNSW index with exact re-scoring of the candidates' people."""

    def __init__(self, templates: TemplateMatrix, backend: str = "usearch", candidates: int = 32,
                 expansion_search: int = 64, connectivity: int = 16, expansion_add: int = 128,
                 threads: int = 0) -> None:
        self.exact = ExactSearch(templates)  # rows grouped by person: what the re-scoring reads
        self.candidates = candidates
        person_index = np.repeat(np.arange(len(self.exact.people)),
                                 np.diff(np.append(self.exact.starts, len(self.exact.embeddings))))
        self.row_person = person_index  # row -> position in exact.people
        self.ends = np.append(self.exact.starts[1:], len(self.exact.embeddings))
        self.index = build_index(self.exact.embeddings, backend, connectivity, expansion_add, expansion_search,
                                 threads)

    def templates_searched(self, masked: bool) -> int:
        # the rule's union bound counts every template: a stranger is compared with the whole gallery, in effect
        return self.exact.templates_searched(masked)

    def top_people(self, probes: np.ndarray, masked: np.ndarray, k: int = 2,
                   masked_template_offset: np.ndarray | None = None) -> PersonScores:
        probes = np.asarray(probes, np.float32)
        count = len(probes)
        ids = np.full((count, k), -1, np.int64)
        best = np.full((count, k), -np.inf, np.float32)
        if count == 0 or len(self.exact.people) == 0:
            return PersonScores(ids, best)
        rows = self.index.search(probes, min(self.candidates, len(self.exact.embeddings)))
        exact = self.exact
        for q in range(count):
            people = np.unique(self.row_person[rows[q][rows[q] >= 0]])
            lengths = self.ends[people] - exact.starts[people]
            columns = np.concatenate([np.arange(exact.starts[p], self.ends[p]) for p in people])
            scores = exact.embeddings[columns] @ probes[q]
            is_masked = exact.masked[columns]
            if not masked[q]:
                scores[is_masked] = -np.inf
            elif masked_template_offset is not None:
                scores[is_masked] -= np.float32(masked_template_offset[q])
            per_person = np.maximum.reduceat(scores, np.concatenate([[0], np.cumsum(lengths)[:-1]]))
            order = np.argsort(-per_person, kind="stable")[:k]
            ids[q, :len(order)] = exact.people[people[order]]
            best[q, :len(order)] = per_person[order]
        ids[~np.isfinite(best)] = -1
        return PersonScores(ids, best)


def make_search(templates: TemplateMatrix, ann: str | None = "usearch", threshold: int = ANN_THRESHOLD
                ) -> TemplateSearch:
    """Exact search up to ``threshold`` templates (or when ``ann`` is None), the approximate one above."""
    if ann is None or len(templates.person_ids) < threshold:
        return ExactSearch(templates)
    return AnnSearch(templates, ann)
