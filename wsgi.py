"""WSGI entry point: `gunicorn 'wsgi:app'`."""

from enablement import create_app

app = create_app()
