"""The inputs wing: everything that turns what a user points at into `InputRecord`s.

- `listing`: the stream of every input's records (`iter_inputs`; `list_inputs` counts and digests
  it in one pass and iterates it again on demand): folders of audio and JSONL / CSV / parquet
  manifests (UALM's formats included), and the sources below;
- `rows`: one raw manifest row normalised into record fields; `records`: the record itself;
- `sources`, `parquet`, `wds`, `urls`, `source_rows`: URL lists, Hugging Face parquet datasets
  and WebDataset tars, each listed as records whose `url` locates the audio;
- `crawl`: the crawl policy (URL and address checks, robots, politeness) and the fetcher that the
  ingest unit uses to obtain a record's bytes.

Nothing here imports the pipelines or the engines: the build reads records from this wing.
"""
