"""Samples longer than a training sequence, cut into pieces that each fit: one rule, shared by
the trainer (which lays the pieces out) and the blend's statistics (which count them), so a
blend plans exactly the tokens the trainer uses.

A piece is itself a sample (metadata and codes) in the same format, so the chat layout and the
token count apply to it unchanged. The cut:
- A sample that fits is one piece, itself. A generation sample (one audio answer) and an
  understanding sample without a conversation have nothing to cut between: when too long they
  are unusable (no pieces), and both the trainer (`too_long`) and the statistics (0 tokens,
  `unusable`) count them so.
- Otherwise the turns after the context (the leading system and user turns before the first
  assistant turn: the request, and for understanding the turn holding the audio) are cut at turn
  boundaries, and a turn with parts (a reasoning trace's text and audio) also between parts.
  Every piece repeats the context first: a continuation without its request (or the audio it
  talks about) would teach answers to nothing. The context's turns are not the assistant's, so
  repeating them adds no learning target twice.
- Pieces are filled greedily in order; two places are not cut when the two sides fit in one
  piece: after an audio part followed by text of the same turn (the text is about that audio:
  "What I hear: ...") and after a turn that is not the assistant's (a question with its answer).
- A part that does not fit with the context even alone makes the sample unusable (no pieces):
  cutting inside a text part or an audio segment would leave halves the model cannot read.

    >>> # split_sample(meta, codes, tokenizer, codebooks=8, seq_len=512) -> [(meta, codes), ...]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ualm.train.sequence.chat import build_sample, sample_task
from ualm.train.sequence.layout import ASSISTANT, ROLES, USER
from ualm.train.sequence.text_tokenizer import TextTokenizer

Codes = np.ndarray | Mapping[str, np.ndarray] | None
Piece = tuple[dict[str, Any], Codes]
Segment = tuple[int, int | None]
"""(turn index, part index; None for a turn whose content is one string)."""


def laid_length(meta: Mapping[str, Any], codes: Codes, tokenizer: TextTokenizer,
                codebooks: int) -> int:
    """Positions of the sample's layout (its condition kept); ValueError when it has none."""
    return len(build_sample(meta, codes, tokenizer, codebooks))


def split_sample(meta: Mapping[str, Any], codes: Codes, tokenizer: TextTokenizer,
                 codebooks: int, seq_len: int) -> list[Piece]:
    """The pieces the trainer lays out, in order: [(meta, codes)] when the sample fits, [] when
    it cannot be cut to fit (see the module docstring). Raises ValueError for a sample that
    cannot be laid out at all."""
    if laid_length(meta, codes, tokenizer, codebooks) <= seq_len:
        return [(dict(meta), codes)]
    key = "messages" if meta.get("messages") is not None else (
        "conversations" if meta.get("conversations") else None)
    if key is None or sample_task(meta) == "generation":
        return []
    turns = list(meta[key])
    roles = [ROLES.get(str(t.get("role", t.get("from", "user"))), USER) for t in turns]
    context = _context(roles)
    segments = [(t, p) for t in range(context, len(turns)) for p in _parts(turns[t])]
    pieces: list[Piece] = []
    current: list[Segment] = []
    for atom in _atoms(segments, turns, roles):
        queue = [atom]
        while queue:
            group = queue.pop(0)
            if _fits(meta, key, turns, context, current + group, codes, tokenizer, codebooks,
                     seq_len):
                current += group
                continue
            if current:  # cut before the group, then try it in a fresh piece
                pieces.append(_piece(meta, key, turns, context, current, codes))
                current = []
                queue.insert(0, group)
            elif len(group) > 1:  # a glued group that fits in no piece: cut inside it
                queue[:0] = [[s] for s in group]
            else:
                return []  # one part longer than a piece with its context
    if current:
        pieces.append(_piece(meta, key, turns, context, current, codes))
    return pieces


def _context(roles: list[int]) -> int:
    """Turns every piece repeats: those before the first assistant turn (none when there is no
    assistant turn, e.g. plain text, where every turn is a target)."""
    return roles.index(ASSISTANT) if ASSISTANT in roles else 0


def _parts(turn: Mapping[str, Any]) -> list[int | None]:
    content = turn.get("content", turn.get("value", ""))
    return list(range(len(content))) if isinstance(content, list) and content else [None]


def _atoms(segments: list[Segment], turns: list[Any], roles: list[int]) -> list[list[Segment]]:
    """Segments in groups not cut when they fit together: audio with the text after it in its
    turn, and a turn that is not the assistant's with the start of the next one."""
    atoms: list[list[Segment]] = []
    glue = False
    for seg in segments:
        if glue and atoms:
            atoms[-1].append(seg)
        else:
            atoms.append([seg])
        turn, part = seg
        content = turns[turn].get("content")
        last = part is None or part == len(content) - 1
        is_audio = part is not None and content[part].get("type") == "audio"
        glue = (is_audio and not last) or (last and roles[turn] != ASSISTANT)
    return atoms


def _turns_of(key: str, turns: list[Any], context: int, chosen: list[Segment]) -> list[Any]:
    """The context's turns, then the chosen segments regrouped into their turns."""
    out = [dict(t) for t in turns[:context]]
    last = -1
    for turn, part in chosen:
        if part is None:
            out.append(dict(turns[turn]))
        elif turn != last:
            out.append({**turns[turn], "content": [turns[turn]["content"][part]]})
        else:
            out[-1]["content"].append(turns[turn]["content"][part])
        last = turn
    return out


def _piece(meta: Mapping[str, Any], key: str, turns: list[Any], context: int,
           chosen: list[Segment], codes: Codes) -> Piece:
    own = _turns_of(key, turns, context, chosen)
    piece = {**meta, key: own}
    if isinstance(codes, Mapping):  # a trace's arrays: only those its parts name
        refs = {str(p.get("ref")) for t in own if isinstance(t.get("content"), list)
                for p in t["content"] if p.get("type") == "audio"}
        return piece, {r: a for r, a in codes.items() if r in refs}
    return piece, codes  # one clip: the context's first user turn holds it


def _fits(meta: Mapping[str, Any], key: str, turns: list[Any], context: int,
          chosen: list[Segment], codes: Codes, tokenizer: TextTokenizer, codebooks: int,
          seq_len: int) -> bool:
    piece, own = _piece(meta, key, turns, context, chosen, codes)
    return laid_length(piece, own, tokenizer, codebooks) <= seq_len
