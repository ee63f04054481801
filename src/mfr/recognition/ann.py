"""Approximate search for large galleries: an index proposes candidates, the exact rule decides.

Above ``ANN_THRESHOLD`` templates the exact search costs more than a camera's frame budget on a small
CPU (1.3 ms per probe at 100k templates, 15 ms at 1M on 2 cores). An approximate index returns the
``candidates`` nearest templates of a probe; every template of those candidates' people is then scored
exactly, with the same mask rules and offsets as ``ExactSearch``, so the decision rule sees exact scores
and the only approximation is which people are looked at. Recall@1 against exact search is what
``mfr bench gallery`` reports (docs/fleet-and-serving.md).

Two indexes, measured against each other on face-like galleries of up to a million templates:

- ``faiss-ivfpq`` (default): faiss's inverted file, about 4 sqrt(N) k-means lists, with 4-bit
  product-quantised codes scanned by SIMD (16 bytes per 128-d template); 30 % of the lists per probe.
  At 1M templates: recall@1 0.995 at 0.9 ms p95 on a 2-core CPU, built in 17 s (k-means on a sample,
  then one assignment per template), which matters because a replica rebuilds its index after every
  pull. The same inverted file with 8-bit codes scanned too slowly to reach 0.99 within 2 ms;
- ``usearch-hnsw``: an HNSW graph (usearch, int8 vectors, 32 links per node). At 1M templates it needed
  ef 512 (2.9 ms) for recall 0.994, and 5.5 minutes to build.

Face probes are a hard case for graph indexes: a genuine probe is close to its own template (cosine about
0.7) and far from everything else, including that template's graph neighbours, so a greedy walk gets
little guidance. The libraries are optional imports (the ``ann`` extra: faiss-cpu).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from mfr.errors import MfrError
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch, PersonScores

ANN_THRESHOLD = 100_000  # templates; below it the exact search is fast enough, and exact


class VectorIndex(Protocol):
    """An inner-product index over rows 0..N-1 with one knob trading time for recall."""

    effort: int  # lists scanned (IVF) or the search's expansion (HNSW)

    def search(self, probes: np.ndarray, count: int) -> np.ndarray:
        """(Q, count) row numbers, nearest first; -1 where fewer were found."""
        ...

    def set_effort(self, effort: int) -> None:
        ...

    def memory_bytes(self) -> int:
        ...


class FaissIvfPqIndex:
    """faiss ``IVF{lists},PQ{d/4}x4fs``: k-means lists, 4-bit product-quantised codes (16 bytes for 128
    dimensions) scanned with SIMD ("fast scan"), ``effort`` lists per probe. Codes this small make scanning
    a third of the lists cheap, which is what face probes need (see the module's docstring)."""

    def __init__(self, vectors: np.ndarray, effort: int | None = None, seed: int = 0) -> None:
        try:
            import faiss
        except ImportError:
            raise MfrError("the approximate gallery index needs faiss: pip install 'mfr[ann]'") from None
        count, dim = vectors.shape
        self.lists = int(min(65536, max(16, 2 ** round(math.log2(4 * math.sqrt(count))))))
        codes = f"PQ{dim // 4}x4fs" if dim % 4 == 0 else "SQ8"
        self.index = faiss.index_factory(dim, f"IVF{self.lists},{codes}", faiss.METRIC_INNER_PRODUCT)
        self.ivf = faiss.extract_index_ivf(self.index)
        rng = np.random.default_rng(seed)
        sample = vectors if count <= 50 * self.lists else vectors[rng.choice(count, 50 * self.lists, replace=False)]
        self.index.train(np.ascontiguousarray(sample, np.float32))
        self.index.add(np.ascontiguousarray(vectors, np.float32))
        self.set_effort(effort or max(1, round(0.3 * self.lists)))

    def set_effort(self, effort: int) -> None:
        self.effort = int(min(effort, self.lists))
        self.ivf.nprobe = self.effort

    def search(self, probes: np.ndarray, count: int) -> np.ndarray:
        _, keys = self.index.search(np.ascontiguousarray(probes, np.float32), count)
        return np.asarray(keys, np.int64)

    def memory_bytes(self) -> int:
        return int(self.index.ntotal * (self.ivf.code_size + 8) + self.lists * self.ivf.d * 4)


class UsearchHnswIndex:
    """usearch HNSW over int8 vectors (exact re-scoring makes up for the quantisation)."""

    def __init__(self, vectors: np.ndarray, effort: int | None = None, connectivity: int = 32,
                 expansion_add: int = 128) -> None:
        try:
            from usearch.index import Index
        except ImportError:
            raise MfrError("the usearch-hnsw gallery search needs usearch: pip install usearch") from None
        self.index = Index(ndim=vectors.shape[1], metric="ip", dtype="i8", connectivity=connectivity,
                           expansion_add=expansion_add)
        self.index.add(np.arange(len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors, np.float32))
        self.set_effort(effort or 256)

    def set_effort(self, effort: int) -> None:
        self.effort = int(effort)
        self.index.expansion_search = self.effort  # type: ignore[misc]  # has a setter; mypy misreads it

    def search(self, probes: np.ndarray, count: int) -> np.ndarray:
        from usearch.index import BatchMatches

        matches = self.index.search(np.ascontiguousarray(probes, np.float32), count)
        keys: np.ndarray = np.full((len(probes), count), -1, np.int64)
        if not isinstance(matches, BatchMatches):  # one probe: a flat result
            found = np.asarray(matches.keys, np.int64).reshape(-1)
            keys[0, :len(found)] = found
            return keys
        rows = np.asarray(matches.keys, np.int64).reshape(len(probes), -1)
        valid = np.arange(rows.shape[1])[None, :] < np.asarray(matches.counts).reshape(-1, 1)
        keys[:, :rows.shape[1]] = np.where(valid, rows, -1)
        return keys

    def memory_bytes(self) -> int:
        return int(self.index.memory_usage)


IndexType = Callable[[np.ndarray, "int | None"], VectorIndex]  # (rows, effort or None: the default) -> index


class AnnSearch:
    """``TemplateSearch`` over an approximate index (``index_type``: one of the ``VectorIndex`` classes)
    with exact re-scoring of the candidates' people."""

    def __init__(self, templates: TemplateMatrix, index_type: IndexType, candidates: int = 64,
                 effort: int | None = None) -> None:
        self.exact = ExactSearch(templates)  # rows grouped by person: what the re-scoring reads
        self.candidates = candidates
        person_index = np.repeat(np.arange(len(self.exact.people)),
                                 np.diff(np.append(self.exact.starts, len(self.exact.embeddings))))
        self.row_person = person_index  # row -> position in exact.people
        self.ends = np.append(self.exact.starts[1:], len(self.exact.embeddings))
        self.index = index_type(self.exact.embeddings, effort)

    def templates_searched(self, masked: bool) -> int:
        # the rule's union bound counts every template: a stranger is compared with the whole gallery, in effect
        return self.exact.templates_searched(masked)

    def top_people(self, probes: np.ndarray, masked: np.ndarray, k: int = 2,
                   masked_template_offset: np.ndarray | None = None) -> PersonScores:
        probes = np.asarray(probes, np.float32)
        count = len(probes)
        found = PersonScores.none_found(count, k)
        if count == 0 or len(self.exact.people) == 0:
            return found
        ids, best = found.person_ids, found.scores
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
        return found
