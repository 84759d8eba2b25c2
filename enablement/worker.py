"""What each `enablement worker` process imports: the app from the environment, and its broker.

Dramatiq's own command line runs the worker processes (`enablement worker` starts it with
`enablement.worker:broker`); every process builds the app once, so a job runs with the same
settings, database and CRM as the web processes.
"""

from __future__ import annotations

from enablement import create_app
from enablement.config import Settings
from enablement.errors import InvalidInput

app = create_app(Settings.from_env())
container = app.extensions["enablement"]
if container.settings.job_queue != "redis":
    raise InvalidInput("`enablement worker` needs REDIS_URL (JOB_QUEUE=redis)")
broker = container.jobs.broker
