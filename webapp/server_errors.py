"""Gunicorn's own error answers (request line too long, malformed headers) as the API's JSON errors.

Gunicorn refuses some requests before the app sees them and answers with an HTML page; swapping its
writer keeps "JSON everywhere" true for those too. wsgi.py installs it in every gunicorn worker.
"""

from __future__ import annotations

import json
import socket

from webapp.errors import HTTP_CODES, error_body

SERVER_CODES: dict[int, str] = {
    **HTTP_CODES,
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    501: "not_implemented",
}
_installed = False


def json_error_bytes(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 error answer carrying the JSON error object."""
    message = f"{reason}: {detail}" if detail else reason
    if status >= 500:
        message = "unexpected server error; the server log has the details"
    body = json.dumps(error_body(SERVER_CODES.get(status, "bad_request"), message[:500])).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def install_json_server_errors() -> bool:
    """Make gunicorn (when it runs this app) answer its own errors in JSON; False when gunicorn is absent."""
    global _installed
    try:
        from gunicorn import util
    except ImportError:
        return False
    if not _installed:

        def write_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
            util.write_nonblock(sock, json_error_bytes(status_int, reason, mesg))

        util.write_error = write_error
        _installed = True
    return True
