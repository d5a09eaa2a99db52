"""The model and what runs it: the UALM model (`model`), its Lightning module (`module`), what
trains in each stage (`freeze`), the learning-rate schedule, held-out evaluation (`evaluate`,
and `validate` while training), generation and inference, and the learning proof (`proof`)."""
