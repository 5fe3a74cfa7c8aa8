"""Model access without Dagster, one module per responsibility.

types (requests, completions, Usage, the error), keys (journal keys, endpoint id), pricing
(prices, costs, Budget), journal (SQLite answers and request leases), wire (the OpenAI wire
format as pure functions), transports (aiohttp and SDK), redaction (secrets out of messages),
interrupts (signals during a wait), config (ModelClientConfig), client (the concurrent
ModelClient) and embedded (the local llama.cpp server).
"""
