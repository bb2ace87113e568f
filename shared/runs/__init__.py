"""Runs: the model and state machine (:mod:`.model`) and the end event's document
(:mod:`.event`). Pure values: storage is :mod:`shared.azure_storage.runs`, delivery
:mod:`shared.events`."""
