"""The Azure Functions entry point: the HTTP API as an ASGI app, and the other triggers'
blueprints. Nothing else lives here; the triggers are in ``functions/``, the work in ``shared/``."""

import azure.functions as func

from functions.events import bp as events
from functions.http import fast_app
from functions.root import check_at_startup
from functions.timer import bp as timer
from functions.worker import bp as worker

check_at_startup()
app = func.AsgiFunctionApp(app=fast_app, http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (worker, events, timer):
    app.register_functions(blueprint)
