"""A small framework for provider sandboxes: local fake servers that speak a provider's real API shape.

A `SandboxApp` holds one fake provider: its routes, its data, a log of every request it received and a queue
of injected faults (the next N responses are 429s with `Retry-After`, 5xx, 401, a malformed body, slow, or a
dropped connection). A `SandboxServer` serves one or more apps on 127.0.0.1 (port 0 picks a free port), each
under a path prefix, from a `ThreadingHTTPServer` with HTTP/1.1 keep-alive.

Nothing here imports Django: the sandbox runs in tests, in `python -m integrations.sandbox`, and in the
benchmark without settings.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class SandboxRequest:
    method: str
    path: str  # below the app's mount prefix, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # scheme://host:port plus the mount prefix, as the client addressed us
    raw_query: str = ""
    fault: str = ""  # the injected fault that answered this request, if any
    status: int = 0  # the status the sandbox answered with (0: the connection was dropped)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """A form-encoded or JSON body as a flat dict (OAuth token endpoints accept both)."""
        if self.header("content-type", "").startswith("application/json"):
            data = self.json()
            return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", errors="replace")).items()}


@dataclass
class SandboxResponse:
    status: int = 200
    body: Any = None  # dict/list: sent as JSON; str/bytes: sent as is; None: empty body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow provider)
    disconnect: bool = False  # close the connection without answering

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass
class Fault:
    """One injected failure, used for the next `remaining` requests whose path starts with `path`."""

    kind: str
    response: SandboxResponse
    remaining: int
    path: str = ""
    passthrough: bool = False  # slow faults: delay, then answer normally


Handler = Callable[..., SandboxResponse]
THROTTLED = "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."


class SandboxApp:
    """Routes, request log and fault queue of one fake provider. Subclasses add routes and data."""

    name = "sandbox"

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[Fault] = []
        self.requests: list[SandboxRequest] = []
        self.lock = threading.RLock()
        self.server: SandboxServer | None = None
        self.prefix = ""

    # --- routing ---------------------------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern` is a regex matched against the whole path; named groups become keyword arguments."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def before_request(self, request: SandboxRequest) -> SandboxResponse | None:
        """Hook run after faults and before routing (auth checks, rate limiting); a response short-circuits."""
        return None

    def after_request(self, request: SandboxRequest, response: SandboxResponse) -> None:
        """Hook to add headers (e.g. rate-limit headers) to every routed response."""

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        with self.lock:
            self.requests.append(request)
            fault = self._take_fault(request.path)
        if fault is not None:
            request.fault = fault.kind
            if not fault.passthrough:
                request.status = 0 if fault.response.disconnect else fault.response.status
                return fault.response
        response = self.before_request(request)
        if response is None:
            response = self._dispatch(request)
            self.after_request(request, response)
        if fault is not None:  # a slow fault: the normal answer, late
            response.delay = fault.response.delay
        request.status = response.status
        return response

    def _dispatch(self, request: SandboxRequest) -> SandboxResponse:
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match:
                if method == request.method:
                    return handler(request, **match.groupdict())
                allowed.append(method)
        if allowed:
            return SandboxResponse(405, {"errors": "Method Not Allowed"}, {"Allow": ", ".join(allowed)})
        return SandboxResponse(404, {"errors": "Not Found"})

    # --- fault injection -------------------------------------------------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        for fault in self._faults:
            if path.startswith(fault.path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def inject(self, kind: str, response: SandboxResponse, *, count: int = 1, path: str = "", passthrough=False):
        with self.lock:
            self._faults.append(Fault(kind, response, count, path, passthrough))

    def fail_next(self, count: int = 1, *, status: int = 500, body: Any = None, headers=None, path: str = "") -> None:
        """The next `count` requests get `status` (e.g. 500, 502, 503, 401, 404) with an optional body."""
        body = {"errors": "Internal Server Error"} if body is None and status >= 500 else body
        self.inject(f"status_{status}", SandboxResponse(status, body, dict(headers or {})), count=count, path=path)

    def rate_limit_next(self, count: int = 1, *, retry_after: str | None = "2.0", path: str = "") -> None:
        """The next `count` requests get 429 with this `Retry-After` (None: no header)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.inject("rate_limited", SandboxResponse(429, {"errors": THROTTLED}, headers), count=count, path=path)

    def unauthorized_next(self, count: int = 1, *, path: str = "") -> None:
        body = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
        self.inject("unauthorized", SandboxResponse(401, body), count=count, path=path)

    def malformed_next(self, count: int = 1, *, path: str = "") -> None:
        """The next `count` requests get 200 with a truncated JSON body."""
        response = SandboxResponse(
            200, b'{"orders": [{"id": 1, "total_price": "1', {"Content-Type": "application/json"}
        )
        self.inject("malformed", response, count=count, path=path)

    def slow_next(self, count: int = 1, *, delay: float = 1.0, path: str = "") -> None:
        """The next `count` requests are answered normally, but only after `delay` seconds."""
        self.inject("slow", SandboxResponse(delay=delay), count=count, path=path, passthrough=True)

    def disconnect_next(self, count: int = 1, *, path: str = "") -> None:
        """The next `count` requests see the connection closed without an answer."""
        self.inject("disconnect", SandboxResponse(disconnect=True), count=count, path=path)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    # --- request log -----------------------------------------------------------------------------------------------
    def requests_to(self, path_pattern: str) -> list[SandboxRequest]:
        pattern = re.compile(path_pattern)
        with self.lock:
            return [r for r in self.requests if pattern.search(r.path)]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- serving on its own ----------------------------------------------------------------------------------------
    def start(self, *, host: str = "127.0.0.1", port: int = 0) -> SandboxApp:
        """Serve this app alone (at the root path) and return it; `url` tells where."""
        SandboxServer({"": self}, host=host, port=port).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError(f"{self.name} sandbox is not started")
        return self.server.url + self.prefix

    def __enter__(self) -> SandboxApp:
        return self if self.server is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's delayed ACK stalls
    # every response by ~40 ms.
    disable_nagle_algorithm = True
    server: _HttpServer

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        prefix, app = self.server.sandbox.app_for(parts.path)
        if app is None:
            self._write(SandboxResponse(404, {"errors": "Not Found"}))
            return
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = SandboxRequest(
            method=self.command,
            path=parts.path[len(prefix) :] or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=f"http://{host}{prefix}",
            raw_query=parts.query,
        )
        response = app.handle(request)
        if response.delay:
            time.sleep(response.delay)
        if response.disconnect:
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: SandboxResponse) -> None:
        payload = response.encoded()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `app.requests` instead
        pass


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SandboxServer

    def handle_error(self, request, client_address) -> None:
        # A client that timed out and hung up while a slow answer was being written is expected here.
        pass


class SandboxServer:
    """Serves sandbox apps on one port, each under a path prefix ("" for the root)."""

    def __init__(self, apps: Mapping[str, SandboxApp], *, host: str = "127.0.0.1", port: int = 0):
        self.apps = {prefix.rstrip("/"): app for prefix, app in apps.items()}
        self.host = host
        self.port = port
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def app_for(self, path: str) -> tuple[str, SandboxApp | None]:
        for prefix in sorted(self.apps, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, self.apps[prefix]
        return "", None

    def start(self) -> SandboxServer:
        self._httpd = _HttpServer((self.host, self.port), _RequestHandler)
        self._httpd.sandbox = self
        self.port = self._httpd.server_address[1]
        for prefix, app in self.apps.items():
            app.server, app.prefix = self, prefix
        # A short poll interval: `stop()` (shutdown) waits for the loop to notice, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Block serving requests (the command-line entry point); returns after `stop()` from another thread."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
