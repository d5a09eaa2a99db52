"""Runs built on the trainer: UALM's training stages (`stage`: align, pretrain, SFT, DPO), DPO
and its preference pairs (`dpo`, `pairs`), and the proxy runs of `ualm blend fit` (`proxies`)."""
