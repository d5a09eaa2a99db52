"""Imports the `encodec` package without torchaudio.

`encodec/utils.py` imports torchaudio at module level only for its file I/O helpers, and no
CPU build of torchaudio imports with torch 2.13 here. A stand-in module satisfies that import;
it must leave `sys.modules` again at once, because transformers probes for torchaudio and fails
on a stand-in (`torchaudio.__spec__ is None`).
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from ualm.errors import UalmError


def import_encodec_model() -> Any:
    """The `encodec.model` module (imported once; later calls return the cached module)."""
    if "encodec.model" in sys.modules:
        return sys.modules["encodec.model"]
    stand_in = None
    if "torchaudio" not in sys.modules:
        stand_in = types.ModuleType("torchaudio")
        sys.modules["torchaudio"] = stand_in
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notes from encodec's own imports
            import encodec.model as model
    except ImportError as exc:
        raise UalmError(
            f"the encodec package cannot be imported ({exc})",
            fix="pip install --no-deps encodec==0.1.1 einops",
        ) from None
    finally:
        if stand_in is not None and sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]
    return model


def new_encodec_model() -> Any:
    """An EnCodec 24 kHz model of the encodec package with fresh (random) weights, in eval mode."""
    model_module = import_encodec_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
        return model_module.EncodecModel.encodec_model_24khz(pretrained=False)
