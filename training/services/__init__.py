"""Writes of the training app, one module per concept (import from the module, not from this package):

- ``datasets``: freezing approved photos into dataset versions and their splits; reloading one to repeat a run.
- ``feature_cache``: forgetting cached features of photos that left.
- ``runs``: a run's row: request, claim, heartbeat, cancel, failing stale runs.
- ``reporter``: a running run's heartbeat thread, progress/log reporter and finish.
- ``execute``: a claimed run from start to end (``training_run_execute``).
- ``gate``: the release rules and the gate step of a run.
- ``publishing``: publishing model versions and changing the one in service.

Reads live in ``training.selectors``; settings -> hyper-parameters in ``training.hparams``;
the feature cache table as a ``FeatureStore`` in ``training.feature_store``.
"""
