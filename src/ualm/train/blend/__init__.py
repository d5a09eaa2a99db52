"""Blends: which sources training draws from, and in what shares of tokens. Corpus statistics
(`stats`), the token count of a sample (`counting`), the rule that turns them into weights
(`weights`, solved by `water_fill`), the spec file (`spec`), and the regression of `ualm blend
fit` (`fit`; its proxy runs train, so they are in `ualm.train.stages.proxies`)."""
