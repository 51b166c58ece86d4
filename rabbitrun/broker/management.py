"""A small client of RabbitMQ's management HTTP API (urllib: no extra dependency)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from rabbitrun.errors import BrokerError
from rabbitrun.settings import mask_url


class ManagementUnavailable(BrokerError):
    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"RabbitMQ management API at {url} is unreachable: {cause}")
        self.url, self.cause = url, cause


class ManagementClient:
    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        parts = urlsplit(url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}/api"
        self._auth = base64.b64encode(f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()).decode()
        self._masked, self._timeout_s = mask_url(url), timeout_s

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self._base + path, headers={"authorization": f"Basic {self._auth}"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read() or b"null")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ManagementUnavailable(self._masked, str(getattr(exc, "reason", exc))) from exc

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        return list(self.get(f"/queues/{quote(vhost, safe='')}"))

    def connections(self) -> list[dict[str, Any]]:
        return list(self.get("/connections"))

    def consumers(self, vhost: str) -> list[dict[str, Any]]:
        return list(self.get(f"/consumers/{quote(vhost, safe='')}"))


def vhost_of(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return urllib.request.url2pathname(path[1:]) if len(path) > 1 else "/"
