"""Open-set identification: enrol N people, probe with their other photos and with strangers.

``mfr eval --dataset lfw-openset`` (LFW, aligned, synthetic masks) and ``--dataset mfr2-openset`` (real
masks, detected and aligned). The gallery and the decision are the deployed ones (``mfr.recognition``:
exact search, thresholds from the manifest at ``--far``, margin, masked templates, the mask classifier
choosing each probe's threshold); only the SQLite file is left out, the templates are held in memory.

LFW: the known people are drawn (seeded) from the LFW people who appear in evaluation pairs and have at
least two photos (1,628; ``--folds`` restricts them to those folds' people); each is enrolled from the
first of their photos and probed with up to 10 others. Strangers are the other people of the same pool,
one photo each (never enrolled). The thresholds come from LFW people in no pair, so nobody probed here
was used to set them. Masked protocol: every probe wears a synthetic mask, the gallery keeps one
unmasked and one synthetic-masked template per person.

MFR2: the 53 people are split (seeded) in half, known and strangers; each known person is enrolled from
one photo without a mask (the first, if none is unmasked) and probed with the rest; the split is
repeated ``repeats`` times and the rates summed over all repeats.

A package that records its training people (``mfr train``) is judged only on people it never trained on:
they are left out of both datasets, matched by name across the datasets' spellings. With normalised scores
(``--score as-norm``) the cohort must hold none of the people judged.

Reported per gallery size and protocol: DIR (known probes named as the right person), known probes named
as a wrong person, strangers named as anyone (the open-set false-accept rate, to hold to ``--far``),
rank-1 (the right person on top, whatever the threshold), and the DIR at the ideal threshold (the one
that names exactly ``--far`` of these very strangers: an upper bound that shows the model's limit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.augment.masks import MaskGenerator
from mfr.benchmarks.verification import CropMaker
from mfr.cache import ArrayCache, cache_key
from mfr.data.lfw import read_lfw
from mfr.data.mfr2 import read_mask_labels, read_mfr2
from mfr.data.pairs import PairDataset
from mfr.errors import DataError
from mfr.progress import Progress, no_progress
from mfr.recognition.cohort import Cohort, people_among
from mfr.recognition.decision import Decision, DecisionPolicy, Identifier, search_for
from mfr.recognition.fusion import FUSIONS
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.mask_state import CLASSIFIER_SPEC, MaskClassifier, reads_crops_of
from mfr.recognition.quality import QualityGate
from mfr.runtime.align import aligned_crop_landmarks
from mfr.runtime.detection import FaceDetector
from mfr.runtime.embedder import FaceEmbedder
from mfr.runtime.machine import fingerprint

PROBES_PER_PERSON = 10
_CHUNK = 256


@dataclass
class OpenSetResult:
    protocol: str  # "unmasked" | "masked" | "MFR2 (real masks)"
    gallery_size: int
    known_probes: int
    stranger_probes: int
    dir_rate: float  # known probes named as the right person
    wrong_rate: float  # known probes named as someone else
    stranger_far: float  # strangers named as anyone
    rank1: float  # right person on top, whatever the threshold
    masked_probes_detected: float  # share of probes the mask classifier called masked
    enrol_photos: int = 1  # photos enrolled per known person
    fusion: str = "templates"  # how they became templates (mfr.recognition.fusion)
    score: str = "raw"  # raw cosine and the measured table, or as-norm calibrated on the gallery
    # DIR at the threshold naming exactly the target share of these strangers (chosen on the judged set
    # itself: an upper bound of what any threshold can do with these scores, never a result)
    ideal_dir: float = 0.0


@dataclass
class OpenSetReport:
    model: str
    package: str
    precision: str
    backend: str
    dataset: str
    target_far: float
    min_margin: float
    results: list[OpenSetResult]
    data: str
    seconds: float
    machine: dict[str, Any] = field(default_factory=fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenSetReport:
        """The report ``to_dict`` wrote."""
        fields = {**data, "results": [OpenSetResult(**r) for r in data["results"]]}
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__})


class FaceBank:
    """Embeddings and mask-classifier calls of (image, masked) faces, computed once and cached."""

    def __init__(self, embedder: FaceEmbedder, crops: CropMaker, classifier: MaskClassifier, cache_dir: Path | None,
                 progress: Progress) -> None:
        self.embedder, self.crops, self.classifier, self.progress = embedder, crops, classifier, progress
        self.cache = ArrayCache(cache_dir, "embeddings")
        self.model_hash = embedder.model_sha256()

    def embed(self, paths: list[Path], masked: bool) -> tuple[np.ndarray, np.ndarray]:
        """(unit embeddings (N, D), classifier says masked (N,)) of the faces at ``paths``."""
        key = cache_key(model=self.model_hash, flip=True, masked=masked, images=[str(p) for p in paths],
                        spec=self.embedder.manifest.spec.to_dict(), purpose="openset")
        cached = self.cache.get(key)
        if cached is not None and len(cached) == len(paths):
            return cached[:, :-1], cached[:, -1] > 0.5
        embeddings, calls = [], []
        chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
        label = f"embedding {'masked ' if masked else ''}faces"
        for chunk in self.progress(chunks, len(chunks), label):
            crops = np.stack([self.crops.crop(path, masked) for path in chunk])
            embeddings.append(self.embedder.embed_crops(crops, flip=True))
            if not reads_crops_of(self.crops.spec):
                crops = np.stack([self.crops.crop(path, masked, CLASSIFIER_SPEC) for path in chunk])
            calls.append(self.classifier.predict(crops))
        out = np.hstack([np.concatenate(embeddings), np.concatenate(calls)[:, None].astype(np.float32)])
        self.cache.put(key, out)
        return out[:, :-1], out[:, -1] > 0.5


def aligned_quality(crop: np.ndarray) -> float:
    """The enrolment quality score (``recognition.quality``) of a face already aligned: its landmarks are the
    template's, so the score ranks by sharpness (and the eye distance of the crop's scale)."""
    height, width = crop.shape[:2]
    return QualityGate().assess(crop.shape, np.array([0, 0, width, height], float),
                                aligned_crop_landmarks(height, width), crop).score


def ideal_dir(decisions: list[Decision], names_by_id: dict[int, str], truth: list[str | None],
              target_far: float) -> float:
    """DIR at the threshold that names ``target_far`` of these very strangers (no margin): an upper bound
    no threshold chosen without the judged strangers can be expected to reach, only to show the limit."""
    known = np.array([t is not None for t in truth])
    scores = np.array([d.score for d in decisions], np.float64)
    stranger_scores = np.sort(scores[~known])[::-1]
    if not known.any() or len(stranger_scores) == 0:
        return 0.0
    threshold = np.nextafter(stranger_scores[int(target_far * len(stranger_scores))], np.inf)
    right = np.array([d.candidate_id is not None and names_by_id.get(d.candidate_id) == t
                      for d, t in zip(decisions, truth, strict=True)])
    return float((right & (scores >= threshold))[known].mean())


def score(identifier: Identifier, names_by_id: dict[int, str], probes: np.ndarray, masked: np.ndarray,
          truth: list[str | None]) -> dict[str, float]:
    """Rates of one probe set; ``truth`` holds each probe's enrolled name, None for strangers."""
    decisions = identifier.decide(probes, masked)
    top = identifier.search.top_people(probes, masked, k=1).person_ids[:, 0]
    known = np.array([t is not None for t in truth])
    named = np.array([d.name for d in decisions], dtype=object)
    right = np.array([n is not None and n == t for n, t in zip(named, truth, strict=True)])
    accepted = np.array([n is not None for n in named])
    rank1 = np.array([names_by_id.get(int(p)) == t for p, t in zip(top, truth, strict=True)])
    return {"known": int(known.sum()), "strangers": int((~known).sum()),
            "dir": float(right[known].mean()) if known.any() else 0.0,
            "wrong": float((accepted & ~right)[known].mean()) if known.any() else 0.0,
            "far": float(accepted[~known].mean()) if (~known).any() else 0.0,
            "rank1": float(rank1[known].mean()) if known.any() else 0.0,
            "ideal_dir": ideal_dir(decisions, names_by_id, truth, identifier.policy.target_far),
            "masked_detected": float(masked.mean())}


def _identifier(embedder: FaceEmbedder, templates: np.ndarray, template_people: np.ndarray, template_masked: np.ndarray,
                names: dict[int, str], policy: DecisionPolicy, cohort: Cohort | None) -> Identifier:
    matrix = TemplateMatrix(templates, template_people, template_masked, names)
    return Identifier(search_for(matrix, policy, "exact", cohort), names,
                      embedder.manifest.thresholds_for(embedder.source_sha256()), policy,
                      model=str(embedder.engine.source))


def check_cohort(cohort: Cohort | None, judged: set[str], what: str) -> None:
    """A cohort holding a judged person would make that person a stranger to themselves: refused."""
    if cohort is not None:
        check_cohort_people(cohort.people_names, cohort.what, judged, what)


def check_cohort_people(cohort_people: Sequence[str], cohort_what: str, judged: set[str], what: str) -> None:
    """``check_cohort`` on the cohort's names alone, before any face of it is embedded."""
    shared = people_among(cohort_people, judged)
    if shared:
        raise DataError(f"{len(shared)} people of the cohort ({cohort_what}) are among the people {what} judges "
                        f"({', '.join(shared[:3])}{', ...' if len(shared) > 3 else ''}): choose a cohort of other "
                        f"people")


def judged_people(dataset: str, folds: tuple[int, ...] | None = None) -> tuple[set[str], str]:
    """The people an open-set run of ``dataset`` draws known people and strangers from, and its name."""
    if dataset == "mfr2-openset":
        return {p.parent.name for p in read_mask_labels()}, "MFR2"
    return people_in_pairs(read_lfw(), folds), "the LFW open set"


def people_in_pairs(dataset: PairDataset, folds: tuple[int, ...] | None) -> set[str]:
    """The LFW open set's pool: everyone in a pair of ``folds`` (all folds: None)."""
    return {path.parent.name for pair in dataset.pairs if folds is None or pair.fold in folds
            for path in (pair.left, pair.right)}


def lfw_openset(embedder: FaceEmbedder, sizes: list[int], policy: DecisionPolicy, folds: tuple[int, ...] | None = None,
                seed: int = 0, mask_seed: int = 0, cache_dir: Path | None = None, masked_templates: bool = True,
                enrol_photos: tuple[int, ...] = (1,), fusion: str = "templates", cohort: Cohort | None = None,
                progress: Progress = no_progress) -> tuple[list[OpenSetResult], str]:
    """With several ``enrol_photos`` counts, the known people are those with more photos than the largest
    count, enrolled from their first k photos and probed with the same later photos for every k, so that
    the counts are compared on the same probes."""
    if fusion not in FUSIONS:
        raise DataError(f"unknown fusion {fusion!r}; one of {', '.join(FUSIONS)}")
    if not enrol_photos or min(enrol_photos) < 1:
        raise DataError("enrolment needs at least one photo per person")
    dataset = read_lfw()
    pairs = [p for p in dataset.pairs if folds is None or p.fold in folds]
    pool_people, trained = unseen_people(people_in_pairs(dataset, folds), embedder)
    check_cohort(cohort, set(pool_people), "the LFW open set")
    photos = {name: sorted((dataset.root / name).glob("*.jpg")) for name in pool_people}
    first_probe = max(enrol_photos)
    several = [name for name in pool_people if len(photos[name]) > first_probe]
    if max(sizes) > len(several):
        raise DataError(f"a gallery of {max(sizes)} people needs as many LFW people with {first_probe + 1} or more "
                        f"photos ({first_probe} to enrol, one to probe); the chosen folds have {len(several)}: the "
                        f"largest gallery size available")
    crops = CropMaker(PairDataset("lfw", dataset.root, pairs, True), embedder.manifest.spec, None, "none", "fail",
                      MaskGenerator(seed=mask_seed))
    bank = FaceBank(embedder, crops, MaskClassifier.load(), cache_dir, progress)
    order = list(np.random.default_rng(seed).permutation(several))
    chosen = FUSIONS[fusion]
    results = []
    for size, count in ((size, count) for size in sizes for count in enrol_photos):
        known = sorted(order[:size])
        strangers = sorted(set(pool_people) - set(known))
        enrol = [p for name in known for p in photos[name][:count]]
        probes = [p for name in known for p in photos[name][first_probe:first_probe + PROBES_PER_PERSON]]
        probes += [photos[name][0] for name in strangers]
        known_set = set(known)
        truth = [p.parent.name if p.parent.name in known_set else None for p in probes]
        ids = {name: i for i, name in enumerate(known)}
        names = {i: name for name, i in ids.items()}
        enrolled = np.array([ids[p.parent.name] for p in enrol])
        weights = (np.array([aligned_quality(crops.crop(p, masked=False)) for p in enrol])
                   if chosen.weighted else np.ones(len(enrol)))
        bare = chosen.fuse(bank.embed(enrol, masked=False)[0], enrolled, weights)
        for protocol in ("unmasked", "masked"):
            masked_protocol = protocol == "masked"
            templates, people, flags = fused_templates(bare, bank, chosen, enrol, enrolled, weights,
                                                       masked_protocol and masked_templates)
            embeddings, detected = bank.embed(probes, masked=masked_protocol)
            rates = score(_identifier(embedder, templates, people, flags, names, policy, cohort), names, embeddings,
                          detected, truth)
            results.append(OpenSetResult(protocol, size, int(rates["known"]), int(rates["strangers"]), rates["dir"],
                                         rates["wrong"], rates["far"], rates["rank1"], rates["masked_detected"],
                                         count, fusion, policy.score, rates["ideal_dir"]))
    where = "all folds" if folds is None else f"folds {','.join(str(f + 1) for f in folds)}"
    data = (f"LFW people in evaluation pairs ({where}): {len(several):,} with {first_probe + 1} or more photos to draw "
            f"known people from (seed {seed}), enrolled from their first {', '.join(map(str, enrol_photos))} photo(s) "
            f"({fusion}), probed from photo {first_probe + 1} on; strangers: the rest of those people, one photo "
            f"each; masks seed {mask_seed}; {'with' if masked_templates else 'without'} synthetic-masked templates"
            + trained_note(trained) + cohort_note(cohort))
    return results, data


def fused_templates(bare: tuple[np.ndarray, np.ndarray], bank: FaceBank, fusion: Any, enrol: list[Path],
                    enrolled: np.ndarray, weights: np.ndarray,
                    with_masked: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(templates, their people, masked flags): the enrolment photos' ``bare`` (fused) templates and people;
    with ``with_masked``, also their synthetic-masked templates, fused alike (as enrolment adds them)."""
    templates, people = bare
    flags = np.zeros(len(templates), bool)
    if with_masked:
        covered, covered_people = fusion.fuse(bank.embed(enrol, masked=True)[0], enrolled, weights)
        templates = np.vstack([templates, covered])
        people = np.concatenate([people, covered_people])
        flags = np.concatenate([flags, np.ones(len(covered), bool)])
    return templates, people, flags


def unseen_people(people: set[str], embedder: FaceEmbedder) -> tuple[list[str], list[str]]:
    """(the people the model never trained on, sorted; those it did): a package from ``mfr train`` records
    its training people, and judging it on them would flatter it. Names are matched across datasets' spellings
    ("Ben_Affleck" in LFW is "BenAffleck" in MFR2)."""
    training = embedder.manifest.stages.training
    trained = people_among(people, training.trained_people if training else [])
    return sorted(people - set(trained)), trained


def trained_note(trained: list[str]) -> str:
    return "" if not trained else (f"; less {len(trained)} people the model trained on "
                                   f"({', '.join(trained[:6])}{', ...' if len(trained) > 6 else ''})")


def cohort_note(cohort: Cohort | None) -> str:
    return "" if cohort is None else f"; cohort: {cohort.what}"


def mfr2_openset(embedder: FaceEmbedder, detector: FaceDetector, detector_name: str, policy: DecisionPolicy,
                 repeats: int = 10, seed: int = 0, cohort: Cohort | None = None,
                 progress: Progress = no_progress) -> tuple[list[OpenSetResult], str]:
    labels = read_mask_labels()
    dataset = read_mfr2()
    crops = CropMaker(dataset, embedder.manifest.spec, detector, detector_name, "center", None)
    bank = FaceBank(embedder, crops, MaskClassifier.load(), None, progress)
    people, trained = unseen_people({p.parent.name for p in labels}, embedder)
    check_cohort(cohort, set(people), "MFR2")
    paths = [p for p in sorted(labels) if p.parent.name in set(people)]
    embeddings, detected = bank.embed(paths, masked=False)
    rng = np.random.default_rng(seed)
    totals: dict[str, float] = {}
    known_total = stranger_total = 0
    for _ in range(repeats):
        known = set(rng.permutation(people)[: len(people) // 2])
        ids = {name: i for i, name in enumerate(sorted(known))}
        names = {i: name for name, i in ids.items()}
        enrol = {}
        for name in sorted(known):
            own = [i for i, p in enumerate(paths) if p.parent.name == name]
            bare = [i for i in own if labels[paths[i]] == "no-mask"]
            enrol[name] = (bare or own)[0]
        rows = sorted(enrol.values())
        probes = [i for i in range(len(paths)) if i not in set(rows)]
        truth = [paths[i].parent.name if paths[i].parent.name in known else None for i in probes]
        identifier = _identifier(embedder, embeddings[rows], np.array([ids[paths[i].parent.name] for i in rows]),
                                 np.zeros(len(rows), bool), names, policy, cohort)
        rates = score(identifier, names, embeddings[probes], detected[probes], truth)
        for key in ("dir", "wrong", "rank1", "ideal_dir"):
            totals[key] = totals.get(key, 0.0) + rates[key] * rates["known"]
        totals["far"] = totals.get("far", 0.0) + rates["far"] * rates["strangers"]
        totals["masked_detected"] = totals.get("masked_detected", 0.0) + rates["masked_detected"] * len(probes)
        known_total += int(rates["known"])
        stranger_total += int(rates["strangers"])
    result = OpenSetResult("MFR2 (real masks)", len(people) // 2, known_total, stranger_total,
                           totals["dir"] / known_total, totals["wrong"] / known_total, totals["far"] / stranger_total,
                           totals["rank1"] / known_total, totals["masked_detected"] / (known_total + stranger_total),
                           score=policy.score, ideal_dir=totals["ideal_dir"] / known_total)
    data = (f"MFR2: {len(people)} people split in half {repeats} times (seed {seed}), known enrolled from one "
            f"unmasked photo, probed with the rest; detector {detector_name}" + trained_note(trained)
            + cohort_note(cohort))
    return [result], data


def run_openset(embedder: FaceEmbedder, package: Path | str, dataset: str, policy: DecisionPolicy,
                run: Callable[[], tuple[list[OpenSetResult], str]]) -> OpenSetReport:
    started = time.perf_counter()
    results, data = run()
    return OpenSetReport(embedder.manifest.model, str(package), embedder.engine.precision, embedder.engine.backend,
                         dataset, policy.target_far, policy.min_margin, results, data,
                         round(time.perf_counter() - started, 1))


def markdown_table(report: OpenSetReport) -> str:
    lines = [f"**{report.model}** ({report.precision}, {report.backend}) on **{report.dataset}**: strangers named "
             f"at most {report.target_far:.0e} (target), margin {report.min_margin}", "",
             "| protocol | score | gallery | photos enrolled | known probes | strangers | DIR (right name) | "
             "wrong name | strangers named | rank-1 | probes called masked | DIR, ideal threshold |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report.results:
        lines.append(f"| {r.protocol} | {r.score} | {r.gallery_size} | {r.enrol_photos} ({r.fusion}) | "
                     f"{r.known_probes} | {r.stranger_probes} | "
                     f"{100 * r.dir_rate:.2f} % | {100 * r.wrong_rate:.2f} % | {100 * r.stranger_far:.2f} % | "
                     f"{100 * r.rank1:.2f} % | {100 * r.masked_probes_detected:.1f} % | {100 * r.ideal_dir:.2f} % |")
    lines += ["", report.data, "DIR, ideal threshold: at the threshold naming the target share of these very "
              "strangers, chosen on the judged set itself: an upper bound, not a result.", f"{report.seconds:.1f} s"]
    return "\n".join(lines)
