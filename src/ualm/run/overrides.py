"""What a run config's file and `--set` items become, and the checks of the mappings it hands on
to the real configs (synth options, training overrides)."""

from __future__ import annotations

from typing import Any

import yaml

from ualm.errors import UalmError
from ualm.sections import build_section

FIX = "see examples/demo.yaml for every section and key"


def check_embedded(config: Any, source: str | None) -> None:
    """The mappings a run config hands to the real configs, checked by them now (naming the
    file): the synth options by `SynthConfig` (with the packaged entry point), the training
    overrides by `TrainConfig`'s sections."""
    from ualm.synth.config import SynthConfig
    from ualm.train.config import TrainConfig

    where = f"{source} " if source else ""
    if config.synth.entry == type(config.synth).entry:  # the packaged one
        build_section(SynthConfig, "synth.options", config.synth.options, "run config", FIX,
                      source=source)
    TrainConfig.from_dict(config.train.overrides, source=f"{where}train.overrides")
    for item in config.train.stages:
        if isinstance(item, dict) and item.get("overrides"):
            TrainConfig.from_dict(item["overrides"],
                                  source=f"{where}train.stages[{item['name']}].overrides")


def apply_override(data: dict[str, Any], item: str) -> dict[str, Any]:
    """`a.b.c=value` set inside nested mappings (created as needed); the value is YAML.

    >>> apply_override({"train": {"config": "tiny"}}, "train.overrides.run.max_steps=5")
    {'train': {'config': 'tiny', 'overrides': {'run': {'max_steps': 5}}}}
    """
    path, sep, raw = item.partition("=")
    if not sep or not path or any(not part for part in path.split(".")):
        raise UalmError(f"bad override {item!r}", fix="write --set section.key=value")
    out = dict(data)
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise UalmError(f"override {item!r}: the value is not YAML",
                        fix="quote it, e.g. --set generate.caption='\"a b\"'") from exc
    if isinstance(value, (dict, list)) and not raw.lstrip().startswith(("{", "[")):
        value = raw  # `a dog: barking` is a caption, not a mapping: collections need {} or []
    node[parts[-1]] = value
    return out
