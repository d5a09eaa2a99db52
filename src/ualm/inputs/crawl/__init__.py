"""The HTTP(S) crawler that ingest units use to obtain their URL inputs.

`policy` decides which destinations may be contacted, `net` builds the checked aiohttp session,
`fetch` downloads one URL (limits, retries, redirects, robots via `robots`, opt-out, sniffing via
`sniff`, the optional `cache`), and `unit` fetches a whole unit's URLs concurrently and hands
each record a temporary local file that the decoders read. The fault-injecting loopback server
of the tests and the benchmark is `ualm.testing.crawl_server`.
"""
