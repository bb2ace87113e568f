"""The service: the API's models, submitting and running jobs with their status records
(``jobs``), the wiring of one deployment (``wiring``) and the local queue worker."""
