"""Experiments plugged into the shared recursive loop (:mod:`hoi_fast.experiment`)."""
