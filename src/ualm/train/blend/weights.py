"""`ualm blend`: weights per source from corpus statistics, task targets and repeat caps.

The rule, exactly (shares are of tokens, B is the budget):
1. Each task t gets its target share tau_t of B.
2. Within a task, source s gets a share proportional to n_s^(1/T) (n_s: its tokens; T: the
   temperature; T=1 is proportional to size, larger T flattens towards uniform), clipped to
   [min_share, max_epochs x n_s / (tau_t B)]: the floor is a source's least share of its task,
   the cap keeps it from being seen more than max_epochs times. The clipped shares are
   `water_fill`: q_s = clip(lambda p_s, lower_s, upper_s) with lambda solved exactly, which is
   also the closest distribution to the temperature prior (in KL) that meets the bounds.
3. Default budget: one pass at the targets' proportions, B = min_t n_t / tau_t: the task with
   the least data for its target is seen exactly once and the others are subsampled.
When a task holds fewer than tau_t B / max_epochs tokens, or a source cannot give its floor
within its cap, the targets are infeasible: `compute_blend` says which constraint binds and
raises, unless allow_infeasible, where the short tasks are capped, their excess goes to the
other tasks in proportion to their targets (a water-fill over tasks) and the spec's notes say so.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from ualm.errors import UalmError
from ualm.train.blend.spec import TASKS, WEIGHT_TOLERANCE, BlendSpec, SourceSpec
from ualm.train.blend.stats import CorpusStats, corpus_label, cut_note, format_table
from ualm.train.blend.water_fill import SLACK, water_fill

DEFAULT_TARGETS = {"understanding": 0.277, "generation": 0.331, "text": 0.392}
"""UALM's unified model, by tokens (arXiv 2510.12000)."""
DEFAULT_MAX_EPOCHS = 4.0
"""Up to about 4 epochs, repeated tokens are worth nearly as much as fresh ones (Muennighoff et
al., "Scaling Data-Constrained Language Models", 2023); more is usually wasted compute."""


@dataclass(frozen=True)
class BlendOptions:
    """How corpus statistics become weights (see the module docstring for the rule)."""

    targets: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    """Share of all training tokens per task; they must sum to 1."""
    temperature: float = 1.0
    """Within a task, weight ∝ tokens^(1/T)."""
    max_epochs: float | None = DEFAULT_MAX_EPOCHS
    """No source is expected to repeat more often within the budget; None: no cap."""
    min_share: float = 0.0
    """Least share of its task any source gets (0: no floor)."""
    budget: int | None = None
    """Training tokens to plan for; None: one pass at the targets' proportions."""
    allow_infeasible: bool = False
    """Write the closest feasible blend instead of failing when the caps bind."""

    def __post_init__(self) -> None:
        for task, share in self.targets.items():
            if task not in TASKS:
                raise UalmError(f"unknown task {task!r} in the targets",
                                fix=f"tasks are: {', '.join(TASKS)}")
            if not (math.isfinite(share) and share >= 0):
                raise UalmError(f"target {task}={share} is not a share",
                                fix="targets are non-negative numbers that sum to 1")
        total = sum(self.targets.values())
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise UalmError(f"the targets sum to {total:g}, not 1",
                            fix="give shares of all training tokens, e.g. "
                                "understanding=0.277,generation=0.331,text=0.392")
        ordered = {t: self.targets[t] / total for t in TASKS if t in self.targets}
        object.__setattr__(self, "targets", ordered)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise UalmError(f"temperature {self.temperature} must be positive",
                            fix="1 is proportional to size; larger values flatten the mix")
        if self.max_epochs is not None and not self.max_epochs > 0:
            raise UalmError(f"max epochs {self.max_epochs} must be positive",
                            fix="pass a positive number of repeats")
        if not 0 <= self.min_share < 1:
            raise UalmError(f"min share {self.min_share} must be in [0, 1)",
                            fix="it is a source's least share of its task")
        if self.budget is not None and self.budget < 1:
            raise UalmError(f"budget {self.budget} must be a positive number of tokens",
                            fix="omit --budget for one pass at the targets' proportions")


@dataclass(frozen=True)
class Pool:
    """One source of a blend: a (corpus, source, task) and its totals over languages."""

    corpus: str
    name: str
    task: str
    samples: int
    seconds: float
    tokens: int
    languages: tuple[str, ...]


def parse_targets(text: str) -> dict[str, float]:
    """`understanding=0.277,generation=0.331,text=0.392` → a dict (validated by BlendOptions)."""
    targets: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        task, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            targets[task.strip()] = float(value)
        except ValueError:
            raise UalmError(f"bad target {item!r}", fix="write TASK=SHARE pairs separated by "
                            "commas, e.g. understanding=0.3,generation=0.3,text=0.4") from None
    if not targets:
        raise UalmError("no targets given", fix="e.g. --targets generation=0.5,text=0.5")
    return targets


def pools(stats: CorpusStats) -> list[Pool]:
    """The sources of a blend, in stats order: each (corpus, source, task) over its languages."""
    merged: dict[tuple[str, str, str], list] = {}
    for row in stats.rows:
        pool = merged.setdefault((row.corpus, row.source, row.task), [0, 0.0, 0, []])
        pool[0] += row.samples
        pool[1] += row.seconds
        pool[2] += row.tokens
        if row.language:
            pool[3].append(row.language)
    return [Pool(c, s, t, v[0], v[1], v[2], tuple(sorted(set(v[3]))))
            for (c, s, t), v in merged.items()]


def compute_blend(stats: CorpusStats, options: BlendOptions | None = None) -> BlendSpec:
    """The blend spec for `stats` under `options` (raises UalmError when infeasible)."""
    options = options or BlendOptions()
    sources = pools(stats)
    notes: list[str] = []
    targets = _check_tasks(sources, options.targets)
    have = {t: sum(p.tokens for p in sources if p.task == t) for t in targets}
    wanted = {t: share for t, share in targets.items() if share > 0}
    for task in wanted:
        members = sum(1 for p in sources if p.task == task and p.tokens > 0)
        if options.min_share * members > 1 + SLACK:
            raise UalmError(f"min share {options.min_share:g} for each of the {members} sources "
                            f"of {task} adds up to more than the whole task",
                            fix=f"pass --min-share {1 / members:.4g} or less")
    budget = options.budget
    if budget is None:
        scarce = min(wanted, key=lambda t: have[t] / wanted[t])
        budget = max(1, math.floor(have[scarce] / wanted[scarce]))
        notes.append(f"budget {budget:,} tokens (default): one pass at the targets' "
                     f"proportions; {scarce}, the task with the least data for its target, is "
                     f"seen once ({have[scarce]:,} tokens / {wanted[scarce]:g})")
    cap = options.max_epochs if options.max_epochs is not None else math.inf
    binding: list[str] = []
    shares, budget = _task_shares(wanted, have, cap, budget, binding, notes)
    weights: dict[tuple[str, str, str], float] = {}
    for task, share in shares.items():
        members = [p for p in sources if p.task == task and p.tokens > 0]
        for pool, q in zip(members, _source_shares(members, share * budget, cap, options,
                                                   binding), strict=True):
            weights[(pool.corpus, pool.name, pool.task)] = share * q
    if binding and not options.allow_infeasible:
        raise UalmError(f"the targets cannot be met under --max-epochs {cap:g}: "
                        + "; ".join(binding),
                        fix=f"lower --budget to {_max_budget(sources, wanted, have, cap, options):,} "
                            "or less, raise --max-epochs, add data, or pass --allow-infeasible "
                            "to write the closest feasible blend")
    for task in targets:
        idle = [p for p in sources if p.task == task and (targets[task] == 0 or p.tokens == 0)]
        if idle:
            why = "its target is 0" if targets[task] == 0 else "they hold no tokens"
            notes.append(f"weight 0 for {len(idle)} {task} source(s): {why}")
    if stats.seq_len is not None:
        notes.append(cut_note(stats))
    notes.extend(f"infeasible: {b}" for b in binding)
    if binding:
        realised = {t: sum(w for k, w in weights.items() if k[2] == t) for t in targets}
        notes.append("realised task shares: " + ", ".join(
            f"{t} {realised[t]:.4f} (target {targets[t]:g})" for t in targets))
    spec = BlendSpec(
        sources=tuple(_source_spec(p, weights.get((p.corpus, p.name, p.task), 0.0), budget)
                      for p in sorted(sources, key=lambda p: _rank(p, stats))),
        corpora=stats.corpora, targets=dict(targets), budget_tokens=budget,
        tokenizer=stats.tokenizer, temperature=options.temperature,
        max_epochs=options.max_epochs, min_share=options.min_share, notes=tuple(notes))
    spec.validate("computed blend")
    return spec


def _check_tasks(sources: list[Pool], targets: Mapping[str, float]) -> dict[str, float]:
    """Every task of the data has a target and every positive target has data."""
    if not sources:
        raise UalmError("the corpora hold no samples", fix="build corpora with `ualm build`")
    present: dict[str, list[Pool]] = {}
    for pool in sources:
        present.setdefault(pool.task, []).append(pool)
    for task, members in present.items():
        if task not in TASKS:
            raise UalmError(f"source {members[0].name!r} ({members[0].corpus}) has task "
                            f"{task!r}, which a blend cannot train",
                            fix=f"set `task` in its input manifest to one of: {', '.join(TASKS)}")
        if task not in targets:
            tokens = sum(p.tokens for p in members)
            raise UalmError(f"the corpora hold {task} data ({tokens:,} tokens) but the targets "
                            f"give {task} no share",
                            fix=f"add {task}=SHARE to --targets, or {task}=0 to leave it out")
    for task, share in targets.items():
        if share > 0 and sum(p.tokens for p in present.get(task, ())) == 0:
            raise UalmError(f"target {task}={share:g} but the corpora hold no {task} tokens",
                            fix=f"add {task} data, or pass --targets with {task}=0 and the "
                                "other shares summing to 1")
    return dict(targets)


def _task_shares(wanted: dict[str, float], have: dict[str, int], cap: float, budget: int,
                 binding: list[str], notes: list[str]) -> tuple[dict[str, float], int]:
    """Each task's share of the budget: its target, or (when a task cannot supply its target
    within the cap) the closest shares that fit, with the excess spread by target."""
    capacity = {t: cap * have[t] for t in wanted}
    for task, share in wanted.items():
        need = share * budget
        if need > capacity[task] * (1 + SLACK):
            binding.append(f"task {task} needs {need:,.0f} tokens ({share:g} of {budget:,}) but "
                           f"holds {have[task]:,} ({capacity[task]:,.0f} in {cap:g} epochs)")
    if not binding:
        return dict(wanted), budget
    if sum(capacity.values()) < budget:
        lowered = math.floor(sum(capacity.values()))
        notes.append(f"budget lowered from {budget:,} to {lowered:,} tokens: every source at "
                     f"{cap:g} epochs is all the data can give")
        budget = lowered
    tasks = list(wanted)
    filled = water_fill([wanted[t] for t in tasks], [0.0] * len(tasks),
                        [capacity[t] / budget for t in tasks])
    return dict(zip(tasks, filled, strict=True)), budget


def _source_shares(members: list[Pool], task_tokens: float, cap: float, options: BlendOptions,
                   binding: list[str]) -> list[float]:
    """Shares of a task's tokens: the temperature prior, water-filled between floor and cap."""
    logs = [math.log(p.tokens) / options.temperature for p in members]
    top = max(logs)  # in log space: n^(1/T) overflows floats for small T; a prior that
    # underflows stays the least positive float, so the source can still take what others can't
    prior = [max(math.exp(v - top), sys.float_info.min) for v in logs]
    upper = [cap * p.tokens / task_tokens for p in members]
    lower = []
    for pool, hi in zip(members, upper, strict=True):
        if options.min_share > hi * (1 + SLACK):
            binding.append(f"source {pool.name} ({pool.task}) holds {pool.tokens:,} tokens "
                           f"({cap * pool.tokens:,.0f} in {cap:g} epochs) but its floor of "
                           f"{options.min_share:g} of {pool.task} needs "
                           f"{options.min_share * task_tokens:,.0f}")
        lower.append(min(options.min_share, hi))
    return water_fill(prior, lower, upper)


def _max_budget(sources: list[Pool], wanted: dict[str, float], have: dict[str, int],
                cap: float, options: BlendOptions) -> int:
    """The largest budget at which the targets fit under the cap (and floors)."""
    limits = [cap * have[t] / share for t, share in wanted.items()]
    if options.min_share > 0:
        limits += [cap * p.tokens / (options.min_share * wanted[p.task])
                   for p in sources if p.task in wanted and p.tokens > 0]
    return math.floor(min(limits) * (1 - SLACK))


def _source_spec(pool: Pool, weight: float, budget: int) -> SourceSpec:
    return SourceSpec(
        name=pool.name, task=pool.task, corpus=pool.corpus, weight=weight, tokens=pool.tokens,
        samples=pool.samples, hours=round(pool.seconds / 3600, 6),
        expected_epochs=round(weight * budget / pool.tokens, 6) if pool.tokens else 0.0,
        expected_tokens=round(weight * budget))


def _rank(pool: Pool, stats: CorpusStats) -> tuple:
    corpora = list(dict.fromkeys([c.path for c in stats.corpora] + [r.corpus for r in stats.rows]))
    return (TASKS.index(pool.task), corpora.index(pool.corpus), pool.name)


def format_blend(spec: BlendSpec, stats: CorpusStats) -> str:
    """The spec as a table a person reads before training, then its notes."""
    languages = {(p.corpus, p.name, p.task): p.languages for p in pools(stats)}
    several = len(spec.corpora) > 1
    labels = corpus_label(stats)
    headers = [*(["corpus"] if several else []), "source", "task", "language", "samples",
               "hours", "tokens", "weight", "epochs"]
    body = [[*([labels[s.corpus]] if several else []), s.name or "-", s.task,
             ",".join(languages.get(s.key, ())) or "-", f"{s.samples:,}", f"{s.hours:,.3f}",
             f"{s.tokens:,}", f"{s.weight:.4f}", f"{s.expected_epochs:.2f}"]
            for s in spec.sources]
    shares = spec.task_shares()
    lines = [format_table(headers, body, "l" * (len(headers) - 5) + "rrrrr"), "",
             f"budget {spec.budget_tokens:,} tokens; task shares "
             + ", ".join(f"{t} {shares.get(t, 0.0):.4f}" for t in spec.targets)
             + f"; temperature {spec.temperature:g}; max epochs "
             + ("none" if spec.max_epochs is None else f"{spec.max_epochs:g}")
             + (f"; min share {spec.min_share:g}" if spec.min_share else "")]
    lines += [f"note: {n}" for n in spec.notes]
    return "\n".join(lines)
