"""WSGI entry point: `gunicorn webapp.wsgi:app`."""

from webapp import create_app
from webapp.server_errors import install_json_server_errors

install_json_server_errors()
app = create_app()
