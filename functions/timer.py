"""The timer trigger: a mirror pass on the schedule in ``FERRY_MIRROR_SCHEDULE`` (NCRONTAB, UTC)."""

from __future__ import annotations

import azure.functions as func

from functions.root import services
from shared.automation.calls import run_mirrors

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.timer_trigger(arg_name="timer", schedule="%FERRY_MIRROR_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def mirror(timer: func.TimerRequest) -> None:
    await run_mirrors(services())
