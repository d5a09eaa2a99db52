"""Reasoning traces (UALM-R1) and preference pairs, written by teacher LLMs into a corpus.

    ualm synth CORPUS --teacher rule|openai:MODEL[@URL]|local:FOLDER --kinds enrichment,...

Modules, in the order a run uses them:
- `clips`: the corpus's tokenized clips and their codes;
- `neighbors`, `pairs`: text-to-clip similarity (CLAP, or a deterministic stand-in), the
  self-reflection's near-miss and the preference pairs;
- `traces`, `templates`: one job per clip and kind, its versioned prompt;
- `teachers` (+ `openai_teacher`, `local_teacher`, `rules`): the backends;
- `requester`: cache, concurrency, budget, retries honouring Retry-After, repair prompts;
- `schema`: what a reply must hold;
- `output`: trace and pair shards, manifests, MinHash dedup, the funnel;
- `run`: `synth_corpus`, tying them together; `cli`: the `ualm synth` command.
The scripted OpenAI-compatible server of the tests is `ualm.testing.teacher_server`.
"""
