"""WSGI entry point: `gunicorn 'wsgi:app'`."""

import sys

from enablement import create_app
from enablement.errors import EnablementError

# gunicorn's exit status for "worker failed to boot": the master stops instead of restarting
# the worker in a loop, and so does a plain `python -c 'import wsgi'`.
BOOT_ERROR = 3

try:
    app = create_app()
except EnablementError as e:
    # NOTE: a bad setting or an outdated schema is one clear line, not a traceback wall.
    print(f"error: {e.message}", file=sys.stderr)
    raise SystemExit(BOOT_ERROR) from None
