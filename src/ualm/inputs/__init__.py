"""The inputs wing: everything that turns what a user points at into `InputRecord`s.

- `listing`: `list_inputs` counts, digests and cuts the inputs into work units that are
  references (`units`: JSONL byte ranges found by `scan`, parquet row ranges, folder names;
  records listed on the driver for CSV and the sources below), parsing no JSONL or parquet row;
- `manifest_rows`, `unit_reader`: what a unit's worker does: read its rows as records;
  `unique_ids`: the rules that make ids unique, run bucket by bucket (the build's id reduce);
- `rows`: one raw manifest row normalised into record fields; `records`: the record itself;
- `sources`, `parquet`, `wds`, `urls`, `source_rows`: URL lists, Hugging Face parquet datasets
  and WebDataset tars, each listed as records whose `url` locates the audio;
- `crawl`: the crawl policy (URL and address checks, robots, politeness) and the fetcher that the
  ingest unit uses to obtain a record's bytes.

Nothing here imports the pipelines or the engines: the build reads records from this wing.
"""
