"""Verify signatures and attestations on a digest before it is copied (issue #24): the policy
model (:mod:`.policy`), where signatures are found (:mod:`.evidence`), one checker per format
(:mod:`.cosign`, :mod:`.bundle`, :mod:`.notary`) and the verdict (:mod:`.verifier`)."""
