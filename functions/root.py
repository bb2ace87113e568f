"""The composition root: the process's services, from app settings, built once (a bad setting
fails here, naming it)."""

from __future__ import annotations

import functools
import os

from shared.jobs.wiring import Services, build
from shared.settings import Settings

__all__ = ["Services", "services"]


@functools.cache
def services() -> Services:
    return build(Settings.from_env(os.environ))
