"""The latency harness behind ``lsnet-bench``.

``plan`` (what to measure, as data that travels), ``harness`` (runners, inputs, records), ``timing`` (the
clock: warm-up, interleaving, adaptive count), ``stats`` (median, percentiles, throughput),
``provenance`` (machine, GPU, Jetson state, file hashes), ``results`` (JSON Lines), ``report`` and
``plot`` (tables and charts), ``targets`` and ``remote`` (this machine, or another over ssh).
Nothing here imports a runtime library until a runner is activated.
"""
