"""The Azure Functions entry point: builds the app and registers the blueprints of ``functions/``.

Nothing else lives here; the triggers are in ``functions/`` and the work in ``shared/``.
"""

import azure.functions as func

from functions import register

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
register(app)
