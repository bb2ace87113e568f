"""One import: what it asks for (``spec``), ``az acr import``'s policy around the engine (``run``),
and the same import asked of ACR through ARM (``arm``)."""
