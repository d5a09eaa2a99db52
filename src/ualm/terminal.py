"""What the `ualm` command shows besides its own lines. By default the libraries' chatter is
hidden: Lightning's tips and its GPU/TPU availability lines, and the known deprecation and
user warnings of torch, Lightning and transformers, which tell a user of `ualm` nothing they can
act on. `ualm --verbose` shows everything.

Only the command does this (`ualm.cli.main` calls `quiet_libraries`): code that imports `ualm`
as a library keeps every warning and log line its own settings allow. Each filter names one
message (or one logger), never a whole category, so a new warning still shows.
"""

from __future__ import annotations

import logging
import sys
import warnings

from ualm.errors import debug_flag

QUIET_LOGGERS = (
    # rank_zero_info: "💡 Tip: ... litlogger / litmodels", "GPU available: ...", "TPU
    # available: ...", "`Trainer.fit` stopped: `max_steps=N` reached."
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    # "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]"
    "lightning.pytorch.accelerators.cuda",
)
"""Loggers that say only what the run's own summary says better; set to WARNING. (A child
logger's level, unlike the `lightning.pytorch` logger's, survives Lightning's import.)"""

QUIET_WARNINGS = (
    # torch 2.9's pytree, called by Lightning's own utilities
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # Lightning's advice for map-style datasets; ours stream, with the loader's workers set
    # by data.num_workers
    r"The '\w+_dataloader' does not have many workers",
    # frozen modules (the DPO reference, align's frozen backbone) are in eval mode on purpose
    r"Found \d+ module\(s\) in eval mode at the start of training",
    # a resumed run's checkpoint folder holds its last.ckpt by design (the resume says so)
    r"Checkpoint directory .* exists and is not empty",
    # Dask's dashboard, when another cluster holds its port: it moves to a free one
    r"Port \d+ is already in use",
)
"""Messages (regular expressions matched at the start) of warnings hidden by default."""


def global_flags(argv: list[str]) -> tuple[bool, bool, list[str]]:
    """`--debug` and `--verbose` before the command, in either order: (debug, verbose, the
    rest). `--debug` also sets DEBUG_ENV (see `ualm.errors.debug_flag`).

    >>> global_flags(["--verbose", "--debug", "train", "--verbose"])[:2]
    (True, True)
    """
    debug = verbose = False
    while argv and argv[0] in ("--debug", "--verbose"):
        on, argv = debug_flag(argv)
        debug = debug or on
        if argv and argv[0] == "--verbose":
            verbose, argv = True, argv[1:]
    return debug, verbose, argv


def quiet_libraries() -> None:
    """Hides the libraries' known chatter in this process (the command's, not its engines'
    worker processes, which print none of it)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def print_traceback() -> None:
    """The exception being handled, as Python prints it, with credentials masked (a URL with a
    password or a signed query in an error's message or a frame's line)."""
    import traceback

    from ualm.redact import redact_text

    print(redact_text(traceback.format_exc()).rstrip("\n"), file=sys.stderr)
