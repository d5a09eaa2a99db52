"""Public test utilities: loopback servers that speak the real protocols, so that a pipeline
built on ualm can be tested offline exactly as ualm tests itself.

- `crawl_server.FaultyServer`: an HTTP server on 127.0.0.1 that serves files with injected
  faults (slow responses, errors, 429 with Retry-After, redirects, ETags, robots.txt);
- `teacher_server.FakeTeacherServer`: a scripted OpenAI-compatible chat server (valid, invalid
  and failing answers, latency), also `python -m ualm.testing.teacher_server LATENCY`.
- `fuzz.make_fuzz_corpus`: a deterministic corpus of hostile inputs (mutated files of every
  supported container, hostile rows, tars and names) with each input's kind and allowed
  outcomes, a regression suite for a build.

They are shipped on purpose and kept stable; nothing in the library imports them.
"""
