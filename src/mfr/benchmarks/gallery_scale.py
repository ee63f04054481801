"""How gallery search scales: ``mfr bench gallery`` (exact matrix, HNSW in memory, pgvector).

Galleries of a million faces cannot be photographed here, so the benchmark draws them from the statistics
of real face embeddings: the model embeds LFW photos of people with several photos, and a Gaussian model
is fitted to them (mean and covariance of the people's centres, covariance of each photo around its
person's centre: the two-covariance model behind PLDA). Each synthetic person is a centre drawn from the
first, each template and probe a draw around it from the second, normalised: the same intrinsic dimension,
spread and neighbour structure as real embeddings, which is what an approximate index's recall depends
on (uniform random vectors are a much harder and unrealistic case). Stated as synthetic in every report.

Per size: one template per person; probes are new draws of enrolled people, searched one at a time (as a
camera's faces arrive). Recall@1 is agreement with the exact search's best person; latency is one probe's
search including the exact re-scoring of the candidates; memory is what the search keeps (matrix, index,
or the table and index on the server); enrolment is templates/s added to each structure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.recognition.ann import AnnSearch, IndexType
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch, TemplateSearch
from mfr.recognition.searches import SEARCHES
from mfr.runtime.machine import cpu_label, fingerprint


@dataclass(frozen=True)
class FaceStatistics:
    """The two-covariance model of a face embedding: person centre ~ N(mean, between), photo ~ N(centre, within)."""

    mean: np.ndarray
    between: np.ndarray  # Cholesky factor
    within: np.ndarray  # Cholesky factor
    photos: int
    people: int

    def draw(self, rng: np.random.Generator, people: int, per_person: int = 1,
             centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(unit embeddings (people*per_person, D), their centres (people, D)); ``centres`` to draw more
        photos of people drawn before."""
        dim = len(self.mean)
        if centres is None:
            centres = self.mean + rng.standard_normal((people, dim)).astype(np.float32) @ self.between.T
        rows = np.repeat(centres, per_person, axis=0)
        rows = rows + rng.standard_normal(rows.shape).astype(np.float32) @ self.within.T
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), centres


def fit_face_statistics(embeddings: np.ndarray, people: np.ndarray) -> FaceStatistics:
    """Fit the model to unit ``embeddings`` of ``people`` (each with two photos or more)."""
    labels, inverse, counts = np.unique(people, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= 2
    embeddings, inverse = embeddings[keep], np.unique(inverse[keep], return_inverse=True)[1]
    centres = np.stack([embeddings[inverse == i].mean(axis=0) for i in range(inverse.max() + 1)])
    residuals = embeddings - centres[inverse]
    dim = embeddings.shape[1]
    jitter = 1e-6 * np.eye(dim)
    between = np.linalg.cholesky(np.cov(centres, rowvar=False) + jitter).astype(np.float32)
    within = np.linalg.cholesky(np.cov(residuals, rowvar=False) + jitter).astype(np.float32)
    return FaceStatistics(centres.mean(axis=0).astype(np.float32), between, within, len(embeddings), len(centres))


@dataclass(frozen=True)
class GalleryRow:
    method: str  # exact, faiss-ivfpq, usearch-hnsw, pgvector
    templates: int
    effort: int | None  # lists scanned (IVF), ef (HNSW), hnsw.ef_search (pgvector)
    p50_ms: float
    p95_ms: float
    recall_at_1: float  # best person agrees with the exact search's
    memory_mb: float
    enrol_per_second: float  # templates/s into this structure (index build, or the server's path)
    build_seconds: float


@dataclass
class GalleryReport:
    dim: int
    probes: int
    data: str
    rows: list[GalleryRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GalleryReport:
        """The report ``to_dict`` wrote."""
        return cls(data["dim"], data["probes"], data["data"], [GalleryRow(**row) for row in data["rows"]],
                   data["notes"], data["machine"])


def measurable_searches() -> list[str]:
    """The searches ``mfr bench gallery`` measures: every registered one but ``auto`` (exact or an index)."""
    return [name for name in SEARCHES if name != "auto"]


def approximate_searches(methods: list[str]) -> list[tuple[str, IndexType]]:
    """The in-memory approximate searches among ``methods``, with their index classes (swept by effort)."""
    return [(m, index_type) for m in methods if (index_type := SEARCHES.entry(m).index_type) is not None]


def _time_probes(search: TemplateSearch, probes: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Best person of each probe, searched one at a time, and each search's milliseconds."""
    masked = np.zeros(1, bool)
    search.top_people(probes[:1], masked)  # warm-up
    best, times = [], []
    for probe in probes:
        started = time.perf_counter()
        found = search.top_people(probe[None], masked)
        times.append(1000 * (time.perf_counter() - started))
        best.append(int(found.person_ids[0, 0]))
    return np.array(best), times


def _row(method: str, size: int, ef: int | None, times: list[float], best: np.ndarray, truth: np.ndarray,
         memory: float, enrol: float, build: float) -> GalleryRow:
    return GalleryRow(method, size, ef, round(float(np.percentile(times, 50)), 3),
                      round(float(np.percentile(times, 95)), 3), round(float((best == truth).mean()), 4),
                      round(memory / 2**20, 1), round(enrol, 1), round(build, 2))


def measure_gallery(statistics: FaceStatistics, sizes: list[int], methods: list[str], ivf_shares: list[float],
                    hnsw_ef: list[int], pg_ef: list[int], postgres_url: str | None = None, probes: int = 1000,
                    candidates: int = 32, seed: int = 0, log: Callable[[str], None] = lambda _: None
                    ) -> GalleryReport:
    dim = len(statistics.mean)
    report = GalleryReport(dim, probes, f"synthetic: two-covariance model fitted to {statistics.photos} real "
                                        f"embeddings of {statistics.people} LFW people")
    for size in sizes:
        rng = np.random.default_rng(seed)
        gallery, centres = statistics.draw(rng, size)
        chosen = rng.choice(size, probes, replace=False)
        probe_rows, _ = statistics.draw(rng, probes, centres=centres[chosen])
        matrix = TemplateMatrix(gallery, np.arange(size, dtype=np.int64), np.zeros(size, bool))
        started = time.perf_counter()
        exact = ExactSearch(matrix)
        build = time.perf_counter() - started
        truth, times = _time_probes(exact, probe_rows)
        report.rows.append(_row("exact", size, None, times, truth, truth, exact.embeddings.nbytes, size / build,
                                build))
        log(f"{size} templates: exact p50 {report.rows[-1].p50_ms} ms")
        for method, index_type in approximate_searches(methods):
            started = time.perf_counter()
            search = AnnSearch(matrix, index_type, candidates=candidates)
            build = time.perf_counter() - started
            memory = search.index.memory_bytes() + search.exact.embeddings.nbytes
            lists = getattr(search.index, "lists", None)
            efforts = sorted({max(1, round(share * lists)) for share in ivf_shares}) if lists else hnsw_ef
            for effort in efforts:
                search.index.set_effort(effort)
                best, times = _time_probes(search, probe_rows)
                report.rows.append(_row(method, size, search.index.effort, times, best, truth, memory, size / build,
                                        build))
                log(f"{size} templates: {method} effort {search.index.effort}: p95 {report.rows[-1].p95_ms} ms, "
                    f"recall@1 {report.rows[-1].recall_at_1}")
            del search
        if "pgvector" in methods and postgres_url:
            report.rows += _measure_pgvector(postgres_url, gallery, probe_rows, truth, pg_ef, candidates, size, log)
    if "pgvector" in methods and postgres_url:
        report.notes.append(_server_note(postgres_url))
    return report


def _measure_pgvector(url: str, gallery: np.ndarray, probes: np.ndarray, truth: np.ndarray, ef_values: list[int],
                      candidates: int, size: int, log: Callable[[str], None]) -> list[GalleryRow]:
    """Load ``gallery`` into a fresh schema of the server at ``url`` (bulk COPY, then the HNSW index, as a
    large gallery is imported), measure the enrolment path on a sample, and search with ``PgvectorSearch``."""
    from mfr.recognition.gallery import NewTemplate
    from mfr.recognition.gallery_postgres import VECTOR_INDEX, PgvectorSearch, PostgresGallery

    pg = PostgresGallery.connect(url, create=True)
    try:
        db = pg.db
        for table in ("events", "negatives", "templates", "people"):
            db.execute(f"TRUNCATE {table} RESTART IDENTITY CASCADE")
        db.execute("DELETE FROM meta WHERE key IN ('dim', 'fingerprint', 'model')")
        db.execute("DROP INDEX IF EXISTS templates_vec_hnsw")
        db.execute(f"ALTER TABLE templates ALTER COLUMN vec TYPE vector({gallery.shape[1]}) USING NULL")
        started = time.perf_counter()
        raw = pg.connection
        with raw.cursor() as cursor:
            with cursor.copy("COPY people (id, name, created) FROM STDIN") as copy:
                for i in range(size):
                    copy.write_row((i + 1, f"person {i + 1}", "synthetic"))
            with cursor.copy("COPY templates (person_id, embedding, fingerprint, masked, synthetic, quality, "
                             "source_sha256, crop_png, created, vec) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["bigint", "bytea", "text", "integer", "integer", "double precision", "text", "bytea",
                                "text", "vector"])
                for i in range(size):
                    copy.write_row((i + 1, gallery[i].tobytes(), "bench", 0, 0, 1.0, f"s{i}", b"", "synthetic",
                                    pg.vector_value(gallery[i])))
        loaded = time.perf_counter() - started
        raw.execute("SELECT setval(pg_get_serial_sequence('people', 'id'), %s)", (size,))
        raw.execute("SET maintenance_work_mem = '4GB'")
        started = time.perf_counter()
        raw.execute(VECTOR_INDEX)  # the gallery's own index definition
        indexed = time.perf_counter() - started
        raw.execute("INSERT INTO meta(key, value) VALUES ('dim', %s), ('fingerprint', 'bench'), ('model', 'bench') "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(gallery.shape[1]),))
        raw.execute("ANALYZE templates")
        memory = float(raw.execute("SELECT pg_total_relation_size('templates')").fetchone()[0])
        # the enrolment path itself (one transaction per person, index maintained): 200 more people
        crop = np.zeros((8, 8, 3), np.uint8)
        started = time.perf_counter()
        for i in range(200):
            pg.add_templates(f"enrolled {i}", [NewTemplate(gallery[i], crop, f"e{i}", False)], "bench", "bench")
        enrol = 200 / (time.perf_counter() - started)
        pg.db.execute("DELETE FROM people WHERE name LIKE ?", ("enrolled %",))
        log(f"{size} templates: pgvector COPY {size / loaded:.0f}/s, HNSW build {indexed:.1f} s, "
            f"enrolment {enrol:.0f}/s")
        rows = []
        for ef in ef_values:
            search = PgvectorSearch(pg, candidates=candidates, ef_search=ef)
            best, times = _time_probes(search, probes)
            best = best - 1  # people were loaded with id = row + 1
            rows.append(_row("pgvector", size, ef, times, best, truth, memory, enrol, loaded + indexed))
            log(f"{size} templates: pgvector ef {ef}: p95 {rows[-1].p95_ms} ms, recall@1 {rows[-1].recall_at_1}")
        return rows
    finally:
        pg.close()


def _server_note(url: str) -> str:
    """The server the pgvector rows were measured on: versions and the settings that matter for them."""
    from mfr.recognition.gallery_postgres import HNSW_OPTIONS, PostgresGallery

    pg = PostgresGallery.connect(url)
    try:
        raw = pg.connection
        version = raw.execute("SHOW server_version").fetchone()[0]
        vector = raw.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        buffers = raw.execute("SHOW shared_buffers").fetchone()[0]
        return (f"pgvector: PostgreSQL {version}, pgvector {vector}, shared_buffers {buffers}, HNSW index "
                f"({HNSW_OPTIONS}), built with maintenance_work_mem 4GB after a bulk COPY; "
                f"probes after the enrolment sample, each one query")
    finally:
        pg.close()


def lfw_statistics(embedder: Any, cache_dir: Path | None, photos: int = 4000, seed: int = 0) -> FaceStatistics:
    """Embed up to ``photos`` LFW photos of people with several photos (cached) and fit the model."""
    from mfr.cache import ArrayCache, cache_key
    from mfr.data.lfw import lfw_root

    root = lfw_root()
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    files = [(f.name, sorted(f.glob("*.jpg"))) for f in folders]
    files = [(name, paths) for name, paths in files if len(paths) >= 2]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    chosen: list[tuple[str, Path]] = []
    for i in order:
        name, paths = files[i]
        chosen += [(name, p) for p in paths[:6]]
        if len(chosen) >= photos:
            break
    cache = ArrayCache(cache_dir, "embeddings")
    key = cache_key(model=embedder.source_sha256(), flip=True, images=[str(p) for _, p in chosen], purpose="gallery")
    embeddings = cache.get(key)
    if embeddings is None or len(embeddings) != len(chosen):
        from mfr.runtime.image_io import read_image_bgr
        from mfr.runtime.preprocess import crop_from_aligned

        crops = np.stack([crop_from_aligned(read_image_bgr(p), embedder.manifest.spec) for _, p in chosen])
        embeddings = np.concatenate([embedder.embed_crops(crops[i:i + 256], flip=True)
                                     for i in range(0, len(crops), 256)])
        cache.put(key, embeddings)
    return fit_face_statistics(np.asarray(embeddings, np.float32), np.array([name for name, _ in chosen]))


def markdown_table(report: GalleryReport) -> str:
    lines = [f"Gallery search, one probe at a time ({report.probes} probes, {report.dim}-d; {report.data}) on "
             f"{cpu_label(report.machine)}",
             "",
             "| method | templates | effort | p50 ms | p95 ms | recall@1 | memory MB | enrol /s | build s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report.rows:
        lines.append(f"| {r.method} | {r.templates:,} | {r.effort or '-'} | {r.p50_ms} | {r.p95_ms} | "
                     f"{r.recall_at_1:.4f} | {r.memory_mb} | {r.enrol_per_second:,.0f} | {r.build_seconds} |")
    lines += ["", "effort: lists scanned per probe (faiss-ivfpq), ef (usearch-hnsw), hnsw.ef_search (pgvector). "
              "memory: the float matrix kept for exact re-scoring plus the index; for pgvector the table and its "
              "indexes on the server. enrol: templates/s into the index (its build), for pgvector through the "
              "gallery's own enrolment path (one transaction per person)."]
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines)
