"""One exchange with a registry or ARM: the HTTP/1.1 transport (``wire``), where Ferry may
connect (``policy``), the guarded transport that bounds every body and maps every failure
(``exchange``, ``mapping``), the one retry policy (``retry``) and log safety (``logsafety``).
``shared.registry`` and ``shared.arm`` both build on it."""
