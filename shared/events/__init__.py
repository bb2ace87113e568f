"""Run events on their way out: where they go (:mod:`.config`), Standard Webhooks signatures
(:mod:`.signing`), one attempt at a webhook or an Event Grid topic through :mod:`shared.http`
(:mod:`.publish`), and delivery with back-off for a bounded time (:mod:`.delivery`)."""
