"""Build-config presets for common corpus recipes, shipped with the package.

`ualm build --preset sound-captions` starts from `sound-captions.yaml`; a `--config` file given
too is merged on top, key by key, so a user changes one threshold without copying the recipe.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from ualm.errors import UalmError


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir()
                  if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise UalmError(f"unknown preset {name!r}", fix=f"one of: {', '.join(preset_names())}")
    text = resources.files(__package__).joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, recursively for nested mappings."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
