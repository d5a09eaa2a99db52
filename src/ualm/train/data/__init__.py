"""Training data: the sources of some corpora and their draw probabilities (`sources`), each
source's shard reader (`source_reader`), the mixed, packed, resumable stream (`stream`), one per
row of the global batch (`lanes`), and the Lightning data module over them (`datamodule`)."""
