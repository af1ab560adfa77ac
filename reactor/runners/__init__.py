"""Function runners: the worker processes app code runs in (``pool``, ``worker``, ``wire``)."""
