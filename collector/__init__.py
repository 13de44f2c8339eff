"""The network edge: OTLP receivers that hand span batches to sinks (DESIGN §8).

It imports `servicemap`; `servicemap` never imports it, except in `servicemap/cli.py`.
"""
