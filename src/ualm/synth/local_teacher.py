"""A teacher from a local transformers model folder (any causal LM with a tokenizer).

The model loads on the first request, once, and generates on a worker thread, one request at a
time (a second model copy per request would not fit a GPU). Greedy at temperature 0, else
sampled from a generator seeded by the request's seed, so a run is repeatable either way.
Requests are not cut off by the timeout: a thread cannot be interrupted mid-generation, and
`max_tokens` bounds the work instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.synth.teachers import Reply, TeacherRequest


class LocalTeacher:
    timeout = None

    def __init__(self, folder: str | Path, device: str | None = None) -> None:
        self.folder = Path(folder)
        config = self.folder / "config.json"
        if not config.is_file():
            raise UalmError(f"{folder} is not a transformers model folder (no config.json)",
                            fix="pass a folder saved with save_pretrained (model and tokenizer)")
        digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12]
        self.name = f"local:{self.folder.name}-{digest}"
        self.device = device
        self._lock = threading.Lock()
        self._parts: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._parts is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            tokenizer = AutoTokenizer.from_pretrained(self.folder)
            model = AutoModelForCausalLM.from_pretrained(self.folder).to(device).eval()
            self._parts = (model, tokenizer)
        return self._parts

    def _prompt(self, tokenizer: Any, messages: list[dict[str, str]]) -> str:
        if getattr(tokenizer, "chat_template", None):
            return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     tokenize=False))
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def _generate(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Reply:
        import torch

        with self._lock:
            model, tokenizer = self._load()
            ids = tokenizer(self._prompt(tokenizer, messages), return_tensors="pt")["input_ids"]
            ids = ids.to(model.device)
            temperature = float(params.get("temperature") or 0.0)
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {
                "do_sample": False}
            torch.manual_seed(int(params.get("seed") or 0))
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
                tokenizer.eos_token_id
            with torch.inference_mode():
                out = model.generate(ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=int(params.get("max_tokens") or 512),
                                     pad_token_id=pad, **sampling)
            new = out[0, ids.shape[1]:]
            text = tokenizer.decode(new, skip_special_tokens=True)
            stop = "length" if len(new) >= int(params.get("max_tokens") or 512) else "stop"
            return Reply(text, int(out.shape[1]), stop)

    async def complete(self, request: TeacherRequest, params: dict[str, Any]) -> Reply:
        return await asyncio.to_thread(self._generate, request.messages, params)

    async def close(self) -> None:
        return None
