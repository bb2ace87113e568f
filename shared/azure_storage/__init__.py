"""The only code that imports azure.storage and azure.data.tables (:mod:`.store`, :mod:`.runs`,
:mod:`.budget`, :mod:`.rules`); :mod:`.records` holds plain values, read without them."""
