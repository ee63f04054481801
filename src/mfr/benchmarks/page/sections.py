"""The report's sections, each built from the inputs of its kinds (``inputs.KINDS``); a section whose
inputs were not given is left out. Tables come from ``doc_figures``' renderers, the code that writes the
docs' tables, so a table in the docs and the plot beside it in the report come from one reading of the
JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfr.benchmarks import doc_figures
from mfr.benchmarks.page import plots
from mfr.benchmarks.page.inputs import ReportInputs
from mfr.benchmarks.page.markup import jpeg, markdown, plot, text
from mfr.runtime.machine import cpu_label

Section = tuple[str, str, str]  # id, heading, HTML


def _table(renderer: str, reports: list[dict[str, Any]]) -> str:
    return markdown(doc_figures.RENDERERS[renderer](reports)) if reports else ""


def _label(report: dict[str, Any], protocol: str) -> str:
    return f"{report['model']} {report['precision']}, {report['dataset']} {protocol}"


def accuracy(inputs: ReportInputs) -> Section | None:
    evals = inputs.of("eval") + [r[p] for r in inputs.of("drop") for p in ("fp32", "int8")]
    drops, calibrations = inputs.of("drop"), inputs.of("calibration")
    if not (evals or calibrations):
        return None
    parts = []
    curves = [(_label(r, name), p["roc"]["far"], p["roc"]["tar"]) for r in evals
              for name, p in r["protocols"].items() if p.get("roc")]
    if curves:
        parts.append(plot(plots.roc_det(curves), "ROC and DET per model, precision, dataset and protocol"))
    without = sorted({r["_file"] if "_file" in r else r["model"] for r in evals if not any(
        p.get("roc") for p in r["protocols"].values())})
    if without:
        parts.append(f'<p class="note">No curve points in {text(", ".join(without))} (written before reports '
                     f"carried them): their figures are in the tables only.</p>")
    parts.append(_table("eval", inputs.of("eval")))
    if drops:
        parts.append(_table("drop", drops))
        histograms = [(f"{d['int8']['model']} on {d['int8']['dataset']}", d["embedding_cosine"]["histogram"])
                      for d in drops if "histogram" in d["embedding_cosine"]]
        if histograms:
            parts.append(plot(plots.cosine_histograms(histograms), "INT8 against FP32, face by face"))
    if calibrations:
        runs = [(f"{c['model']} ({scheme})", c[scheme]["steps"]) for c in calibrations
                for scheme in ("onnxruntime", "tensorrt_qdq") if isinstance(c.get(scheme), dict)
                and c[scheme].get("steps")]
        if runs:
            parts.append(plot(plots.fallback_steps(runs), "Each step returns the layer that moved the held-out "
                                                          "embeddings most to float"))
        parts.append(_table("calibration", [c for c in calibrations if "machine" in c]))  # a manifest's: plot only
    return "accuracy", "Accuracy: FP32, INT8 and the drop", "".join(parts)


def speed(inputs: ReportInputs) -> Section | None:
    latency, pipelines, cameras = inputs.of("latency"), inputs.of("pipeline"), inputs.of("cameras")
    if not (latency or pipelines or cameras):
        return None
    parts = []
    if latency:
        rows = [(f"{r['engine']} batch {r['batch']}", r["percentiles_ms"]) for report in latency
                for r in report["results"] if r.get("percentiles_ms")]
        if rows:
            parts.append(plot(plots.latency_cdfs(rows), "Latency of each call, engines interleaved in one run"))
        series: dict[str, list[tuple[int, float]]] = {}
        for report in latency:
            for r in report["results"]:
                series.setdefault(r["engine"], []).append((r["batch"], r["faces_per_s"]))
        if any(len(points) > 1 for points in series.values()):
            parts.append(plot(plots.throughput(series), "Faces per second at each batch size"))
        parts.append(_table("latency", latency))
    if pipelines:
        bars = []
        for report in pipelines:
            for run in report["runs"]:
                loop = report.get("loop", "sequential").split(",")[0]
                bars.append((f"{run['resolution']}, {run['faces_target']} faces, detect 1/{run['detect_every']}, "
                             f"{loop}", _per_frame(run["latency"], run["frames"])))
        parts.append(plot(plots.stage_bars(bars), "Mean milliseconds of each stage per frame"))
        parts.append(_table("pipeline", pipelines))
    if cameras:
        parts.append(_table("cameras", cameras))
    return "speed", "Speed", "".join(parts)


def _per_frame(latency: dict[str, dict[str, float]], frames: int) -> dict[str, float]:
    """Mean milliseconds of each stage per frame (a stage that runs per face counts all its faces)."""
    return {stage: figures["mean_ms"] * figures["count"] / max(frames, 1) for stage, figures in latency.items()
            if stage not in ("capture_to_event", "capture_to_done")}


def camera_run(inputs: ReportInputs, crops_from: list[Path]) -> Section | None:
    benches, logs, stats = inputs.of("watch_bench"), inputs.events, inputs.of("watch_stats")
    if not (benches or logs or stats):
        return None
    parts = []
    if stats:
        bars = [(f"{Path(s['_file']).name}: {s['frames']} frames, {s['frames_per_second']} frames/s",
                 _per_frame(s["latency"], s["frames"])) for s in stats]
        parts.append(plot(plots.stage_bars(bars), "mfr watch --stats-json: mean milliseconds of each stage per "
                                                  "frame"))
    for path, events in logs:
        tracks = _tracks(events)
        if tracks:
            parts.append(plot(plots.track_timeline(tracks), f"Tracks of {path.name}"))
        parts.append(_crops(events, crops_from))
    if benches:
        parts.append(_table("watch", benches))
    return "camera", "A camera run", "".join(parts)


def _tracks(events: list[dict[str, Any]], limit: int = 60) -> list[dict[str, Any]]:
    """Per track (source, track id): first and last event, when it was decided, its name, mask state, when
    its identity changed and when the decision was contested (ambiguous, or a negative matched)."""
    from datetime import datetime

    def seconds(event: dict[str, Any]) -> float:
        return datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).timestamp()

    timed = [e for e in events if e.get("track") is not None and "time" in e]
    if not timed:
        return []
    origin = min(seconds(e) for e in timed)
    tracks: dict[tuple[str, Any], dict[str, Any]] = {}
    for event in timed:
        key = (str(event.get("source")), event["track"])
        at = seconds(event) - origin
        track = tracks.setdefault(key, {"label": f"{Path(key[0]).name} #{key[1]}", "start": at, "end": at,
                                        "named_at": None,
                                        "name": None, "masked": False, "changed_at": [], "contested_at": []})
        track["end"] = max(track["end"], at)
        if event["kind"] in ("identified", "identity_changed"):
            if track["named_at"] is None:
                track["named_at"] = at
            track["name"] = event.get("name")
            track["masked"] = track["masked"] or bool(event.get("masked"))
            if event["kind"] == "identity_changed":
                track["changed_at"].append(at)
            if event.get("reason") in ("ambiguous", "negative match"):  # two people close, or "not X" matched
                track["contested_at"].append(at)
    for track in tracks.values():
        name = track["name"] or "unknown"
        track["label"] += f": {name if len(name) <= 24 else name[:23] + '…'}"
    return sorted(tracks.values(), key=lambda t: t["start"])[:limit]


def _crops(events: list[dict[str, Any]], crops_from: list[Path]) -> str:
    """The best crop of each ended track whose snapshot file exists (named first, then unknown)."""
    shown = []
    for event in sorted((e for e in events if e.get("kind") == "track_ended" and e.get("best_crop")),
                        key=lambda e: (e.get("name") is None, str(e.get("name")))):
        path = Path(event["best_crop"])
        candidates = [path] + [folder / path.name for folder in crops_from]
        found = next((p for p in candidates if p.is_file()), None)
        if found is not None:
            shown.append(jpeg(found.read_bytes(), f"{event.get('name') or 'unknown'} (track {event['track']})"))
    if not shown:
        return ""
    return f'<h3>Best crop per track</h3><div class="crops">{"".join(shown[:48])}</div>'


def gallery(inputs: ReportInputs) -> Section | None:
    rows = [row for report in inputs.of("gallery") for row in report["rows"]]
    if not rows:
        return None
    return "gallery", "Gallery scale", plot(plots.gallery_scale(rows), "Search methods by gallery size") + _table(
        "gallery", inputs.of("gallery"))


def machines(inputs: ReportInputs) -> Section | None:
    found: dict[str, dict[str, Any]] = {}
    for reports in inputs.by_kind.values():
        for report in reports:
            for machine in [report.get("machine")] + [report[p].get("machine") for p in ("fp32", "int8")
                                                      if isinstance(report.get(p), dict)]:
                if isinstance(machine, dict) and machine.get("cpu"):
                    found.setdefault(cpu_label(machine), machine)
    if not found:
        return None
    keys = ("cpu_count", "gpu", "onnxruntime", "tensorrt", "cuda_python", "numpy", "python", "mfr")
    rows = "".join(f"<tr><td>{text(label)}</td>" + "".join(f"<td>{text(m.get(k, ''))}</td>" for k in keys) + "</tr>"
                   for label, m in found.items())
    header = "".join(f"<th>{text(k)}</th>" for k in ("CPU (instruction set)", *keys))
    return "hardware", "Hardware and versions", f"<table><tr>{header}</tr>{rows}</table>"
