"""The report's sections: facts (from `gather`) turned into HTML with figures and players."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ualm import figures
from ualm.report import html as h
from ualm.report.audio import Heard
from ualm.report.gather import (
    CorpusFacts,
    RunFacts,
    blend_rows,
    languages,
    sources_and_licences,
)
from ualm.train.metrics import loss_series

Section = tuple[str, str, str]
NOT_MEASURED = "not measured"


def corpus_sections(c: CorpusFacts, name: str, heard: list[Heard]) -> list[Section]:
    return [(f"{name}-overview", f"{name}: overview", _overview(c)),
            (f"{name}-funnel", f"{name}: funnel", _funnel(c)),
            (f"{name}-audio", f"{name}: durations and loudness", _durations(c)),
            (f"{name}-clap", f"{name}: CLAP scores and languages", _clap_languages(c)),
            (f"{name}-sources", f"{name}: sources and licences", _sources(c)),
            (f"{name}-listen", f"{name}: listen", _listen(heard))]


def _overview(c: CorpusFacts) -> str:
    s = c.summary
    rows = [("inputs", s["inputs"]), ("kept inputs", s["kept"]), ("rejected inputs", s["rejected"]),
            ("duplicate inputs", s["duplicates"]),
            ("accounted (inputs = kept + rejected + duplicates)", "yes" if s["accounted"] else "NO"),
            ("samples", s["samples"]), ("audio samples", s["audio_samples"]),
            ("text samples", s["text_samples"]), ("hours kept", float(s["hours"])),
            ("audio shards", s["shards"]), ("config hash", c.config_hash)]
    body = h.table(["", "value"], rows, digits=4)
    for codec_id, t in sorted(c.tokens.items()):
        body += h.note(f"token set {codec_id}: {t['samples']:,} samples, {t['tokens']:,} tokens "
                       f"({t['codebooks']} codebooks x {t['frame_rate']:g} frames/s, "
                       f"{t['bandwidth']:g} kbps)")
        if t.get("random_weights"):
            body += h.note("This token set comes from a RANDOM codec (tests and demos only): "
                           "decoded audio is noise, and the tokens are not training data.", "warn")
    if not c.tokens:
        body += h.note("no token shards (the codec stage has not run)")
    return f'<p>Corpus folder <code>{h.text(c.path)}</code>.</p>' + body


def _funnel(c: CorpusFacts) -> str:
    s = c.summary
    rows = s["funnel_hours"]
    body = h.png(figures.funnel(rows, f"Funnel: {s['inputs']:,} inputs → {s['samples']:,} "
                                      "samples"), "funnel in hours")
    body += h.table(["stage / reason", "level", "hours", "count"],
                    [(r["outcome"], r["level"], r["hours"], r["count"]) for r in rows], digits=4)
    stages = _hours_by_stage(rows[1:-1])
    if stages:
        body += "<h3>Hours lost by stage</h3>" + h.table(
            ["stage", "hours", "inputs or windows"], stages, digits=4)
    if s["reasons"]:
        body += "<h3>Rejected inputs by reason</h3>" + h.table(
            ["reason", "inputs"], sorted(s["reasons"].items()))
    if s["dropped_windows"]:
        body += "<h3>Dropped windows of kept inputs</h3>" + h.table(
            ["reason", "windows"], sorted(s["dropped_windows"].items()))
    if s["duplicate_kinds"]:
        body += "<h3>Duplicates</h3>" + h.table(["kind", "inputs"],
                                                sorted(s["duplicate_kinds"].items()))
    if c.caption_rejects:
        body += "<h3>Captions dropped from kept inputs</h3>" + h.table(
            ["reason", "captions"], sorted(c.caption_rejects.items()))
    return body


def _hours_by_stage(losses: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """The funnel's losses summed by stage: the namespace of a reason (`quality/silent` →
    quality); duplicates are the dedup stage's."""
    totals: dict[str, list[float]] = {}
    for row in losses:
        stage = "dedup" if row["outcome"] == "duplicate" else row["outcome"].split("/")[0]
        acc = totals.setdefault(stage, [0.0, 0])
        acc[0] += row["hours"]
        acc[1] += row["count"] or 0
    return [(k, round(v[0], 6), int(v[1]))
            for k, v in sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def _durations(c: CorpusFacts) -> str:
    audio = c.audio
    if not audio:
        return h.note("no audio samples")
    seconds = [s["seconds"] for s in audio]
    body = h.png(figures.histogram(seconds, "seconds", f"Durations of {len(audio):,} audio "
                                                       "samples"), "duration histogram")
    body += h.note(f"durations: min {min(seconds):.2f} s, mean {sum(seconds) / len(seconds):.2f} "
                   f"s, max {max(seconds):.2f} s")
    lufs = [s["loudness_lufs"] for s in audio if s.get("loudness_lufs") is not None]
    if lufs:
        body += h.png(figures.histogram(lufs, "LUFS (EBU R128 integrated)",
                                        f"Loudness of {len(lufs):,} samples"), "loudness histogram")
    else:
        body += h.note(f"Loudness (LUFS): {NOT_MEASURED} (turn on `loudness.enabled` in the build "
                       "config); the RMS level below is measured for every sample.")
        rms = [s["rms_dbfs"] for s in audio if s.get("rms_dbfs") is not None]
        if rms:
            body += h.png(figures.histogram(rms, "dBFS (RMS)", "RMS level"), "rms histogram")
    return body


def _clap_languages(c: CorpusFacts) -> str:
    if c.clap_scores:
        body = h.png(figures.histogram(c.clap_scores, "cosine similarity",
                                       f"CLAP scores of {len(c.clap_scores):,} captions"),
                     "clap histogram")
    elif c.clap_embedded:
        body = h.note(f"CLAP ran on {c.clap_embedded:,} samples (embeddings stored), but their "
                      f"kept captions' scores are {NOT_MEASURED} in the manifests; captions "
                      "dropped by CLAP are counted under the funnel.")
    else:
        body = h.note(f"CLAP scores: {NOT_MEASURED} (set `clap.model` in the build config).")
    for column, label in (("language", "Language (from the input manifests)"),
                          ("spoken_language", "Spoken language (Whisper)")):
        counts = languages(c, column)
        if counts:
            body += f"<h3>{h.text(label)}</h3>" + h.png(
                figures.bars({k: float(v) for k, v in counts.items()}, "samples", label),
                f"{column} distribution") + h.table(["language", "samples"], list(counts.items()))
        else:
            body += h.note(f"{label}: {NOT_MEASURED}.")
    return body


def _sources(c: CorpusFacts) -> str:
    rows = sources_and_licences(c)
    body = h.table(["source", "licence", "samples", "hours"],
                   [(r["source"], r["license"], r["samples"], r["hours"]) for r in rows], digits=4)
    # A manifest may leave the task out; the trainer then infers it from the sample's form.
    tasks = Counter(s.get("task") or "(inferred from the sample)" for s in c.samples)
    return body + "<h3>Tasks named by the manifests</h3>" + h.table(
        ["task", "samples"], sorted(tasks.items()))


def _listen(heard: list[Heard]) -> str:
    if not heard:
        return h.note("no audio samples to play")
    rows = []
    for x in heard:
        decoded = h.wav(x.decoded, f"{x.key} decoded") if x.decoded else NOT_MEASURED
        rows.append("<tr>" + "".join([
            f"<td><code>{h.text(x.key)}</code><br><span class=\"muted\">{h.text(x.source)}, "
            f"{x.seconds:.2f} s</span></td>", f"<td>{h.text(x.caption) or '—'}</td>",
            f"<td>{h.wav(x.original, x.key)}</td>", f"<td>{decoded}</td>"]) + "</tr>")
    head = "<tr><th>sample</th><th>caption</th><th>stored audio</th><th>codes decoded</th></tr>"
    body = f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    if heard[0].codec_id:
        body += h.note(f"Codes decoded with {heard[0].codec_id}"
                       + (" — a RANDOM codec: expect noise." if heard[0].random_codec else "."))
    return body


def run_sections(r: RunFacts, name: str) -> list[Section]:
    if r.preference:  # a dpo run trains on pairs, not on the blend
        return [(f"{name}-preference", f"{name}: held-out preference pairs", _preference(r)),
                (f"{name}-loss", f"{name}: loss", _loss(r))]
    return [(f"{name}-blend", f"{name}: blend", _blend(r)),
            (f"{name}-loss", f"{name}: loss per task", _loss(r))]


def _preference(r: RunFacts) -> str:
    history = r.preference or []
    body = h.png(figures.preference(history), "held-out implicit-reward accuracy and margin")
    body += h.table(["step", "pairs", "accuracy", "reward margin", "chosen reward",
                     "rejected reward", "log-prob margin"],
                    [(x["step"], x["pairs"], x["accuracy"], x["margin"], x["chosen_reward"],
                      x["rejected_reward"], x["logp_margin"]) for x in history], digits=3)
    body += h.note("DPO against a frozen reference (the stage's init): a pair counts as right "
                   "when the policy raised its chosen clip's log-prob more than its rejected "
                   "one's, relative to the reference. Step 0 is the reference itself.")
    return body


def _blend(r: RunFacts) -> str:
    rows = blend_rows(r)
    if not rows:
        return h.note("no blend: the run folder has neither realised_blend.json nor blend.yaml")
    body = h.png(figures.blend(rows), "blend spec against realised")
    body += h.table(["source/task", "spec share", "realised share", "tokens", "samples"],
                    [(x["source"], x["spec"], x["realised"], x["tokens"], x["samples"])
                     for x in rows], digits=3)
    if r.blend is None:
        body += h.note("No blend spec with the run (blend.yaml, or --blend): the run drew every "
                       "source equally often; only the realised shares are shown.")
    if r.realised is None:
        body += h.note("The run has no realised_blend.json yet (not trained, or interrupted).")
    elif any((r.realised.get("skipped") or {}).values()):
        body += h.note("samples the trainer skipped: " + ", ".join(
            f"{k} {v:,}" for k, v in sorted(r.realised["skipped"].items()) if v))
    return body


def _loss(r: RunFacts) -> str:
    series: dict[str, Any] = {"train": loss_series(r.metrics, "train"),
                              "val": loss_series(r.metrics, "val")}
    if r.evaluation and r.metrics:
        last = max(int(m["step"]) for m in r.metrics if "step" in m)
        series["val"] = series["val"] or {
            ("loss" if t == "all" else f"loss_{t}"): [(last, v)]
            for t, v in _eval_losses(r.evaluation).items()}
    if not series["train"]:
        return h.note("no training log (logs/metrics.csv) in the run folder")
    body = h.png(figures.losses(series), "loss per task")
    names = sorted(set(series["train"]) | set(series["val"]))
    rows = []
    for n in names:
        train = series["train"].get(n) or []
        val = series["val"].get(n) or []
        rows.append((n, train[0][1] if train else None, train[-1][1] if train else None,
                     val[-1][1] if val else None))
    body += h.table(["loss", "train (first)", "train (last)", "validation (last)"], rows, 4)
    if not r.evaluation and not any(series["val"].values()):
        body += h.note(f"validation loss: {NOT_MEASURED} (run `ualm eval`, or give `ualm run` "
                       "a held-out split)")
    elif r.evaluation:
        after = r.evaluation.get("stage")
        body += h.note(f"validation: {r.evaluation.get('samples', 0):,} held-out samples, "
                       "one pass at the last checkpoint (eval.json)" if not after else
                       f"validation: {r.evaluation.get('samples', 0):,} held-out samples, one "
                       f"pass with the final model, after the {after} stage (eval.json)")
    return body


def _eval_losses(evaluation: dict[str, Any]) -> dict[str, float]:
    out = {t: row["loss"] for t, row in evaluation.get("tasks", {}).items()}
    if evaluation.get("loss") is not None:
        out["all"] = evaluation["loss"]
    return out
