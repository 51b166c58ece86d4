"""A small client of RabbitMQ's management HTTP API, on urllib (no extra dependency).

``rabbitrun status``, the topology import and the tests read queue depth, consumers and
connections through it. Errors name the URL with its password masked. Private: ``_``-names.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from rabbitrun.errors import EXIT_USAGE, BrokerError
from rabbitrun.settings import mask_url


class ManagementUnavailable(BrokerError):
    """The management API cannot be used: not reachable, wrong credentials, or failing."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(
            f"RabbitMQ management API at {url} is unavailable: {cause} "
            "(enable it with `rabbitmq-plugins enable rabbitmq_management`)"
        )
        self.url = url
        self.cause = cause


class ManagementRequestRejected(BrokerError):
    """The API answered, but refused the request (e.g. bad definitions, unknown vhost)."""

    exit_code = EXIT_USAGE

    def __init__(self, url: str, method: str, path: str, status: int, reason: str) -> None:
        super().__init__(f"RabbitMQ management API at {url} refused {method} {path} ({status}): {reason}")
        self.url = url
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason


def _vhost(vhost: str) -> str:
    """A vhost as one path segment: ``/`` becomes ``%2F``."""
    return quote(vhost, safe="")


class ManagementClient:
    """Blocking calls to ``<url>/api/...``; ``url`` carries the credentials (http://user:pass@host:15672/)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]  # keep the port and IPv6 brackets, drop the credentials
        self._base = f"{parts.scheme or 'http'}://{host}{parts.path.rstrip('/')}/api"
        self._auth: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode()).decode()
        self.url = mask_url(url)
        self.timeout_s = timeout_s

    def overview(self) -> dict[str, Any]:
        return dict(self.get("/overview"))

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        return list(self.get(f"/queues/{_vhost(vhost)}"))

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        """One queue with its arguments and counters; None when it (or the vhost) does not exist."""
        try:
            return dict(self.get(f"/queues/{_vhost(vhost)}/{quote(name, safe='')}"))
        except ManagementRequestRejected as exc:
            if exc.status == 404:
                return None
            raise

    def connections(self) -> list[dict[str, Any]]:
        return list(self.get("/connections"))

    def consumers(self, vhost: str) -> list[dict[str, Any]]:
        return list(self.get(f"/consumers/{_vhost(vhost)}"))

    def import_definitions(self, defs: dict[str, Any], vhost: str) -> None:
        """POST definitions (e.g. from ``export_definitions``) into one existing vhost."""
        self._request("POST", f"/definitions/{_vhost(vhost)}", defs)

    def get(self, path: str) -> Any:
        """GET ``/api<path>`` and decode its JSON."""
        return self._request("GET", path)

    def _request(self, method: str, path: str, body: object | None = None) -> Any:
        headers = {"content-type": "application/json"}
        if self._auth:
            headers["authorization"] = self._auth
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(method, path, exc) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ManagementUnavailable(self.url, str(getattr(exc, "reason", exc))) from exc
        try:
            return json.loads(payload) if payload else None
        except ValueError as exc:
            raise ManagementUnavailable(self.url, f"{method} {path} answered with non-JSON") from exc

    def _http_error(self, method: str, path: str, exc: urllib.error.HTTPError) -> BrokerError:
        """401/403 and 5xx make the API unusable; other 4xx are a refusal of this request."""
        reason = _reason(exc)
        if exc.code in (401, 403):
            return ManagementUnavailable(self.url, f"authentication failed ({exc.code}: {reason})")
        if exc.code >= 500:
            return ManagementUnavailable(self.url, f"{method} {path} failed ({exc.code}: {reason})")
        return ManagementRequestRejected(self.url, method, path, exc.code, reason)


def _reason(exc: urllib.error.HTTPError) -> str:
    """The API's JSON ``reason`` when there is one, else the HTTP reason phrase."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    return str(body.get("reason") or exc.reason) if isinstance(body, dict) else str(exc.reason)


def vhost_of(amqp_url: str) -> str:
    """The vhost an AMQP URL names (``amqp://h/`` and ``amqp://h`` both mean ``/``)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"
