"""The study engine: lr × β_init sensitivity studies of Demon against LR-decay baselines.

A study spec (``studies.spec``) expands into trials (arm, lr, β_init, seed); executors
(``studies.executors``) run them in-process, with Ray Tune or with Optuna and hand each result to
a sink callback; ``studies.metrics`` turns per-seed results into the sensitivity figures of
docs/metrics.md and ``studies.heatmaps`` draws them. No HTTP and no SQL here: that is ``service``.
"""
