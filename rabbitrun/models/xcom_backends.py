"""Shipped XCom backends beyond the default DB one.

Select with ``[core] xcom_backend = "rabbitrun.models.xcom_backends.FileXComBackend"``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from rabbitrun.errors import XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.xcom_values import REF, DatabaseXComBackend
from rabbitrun.settings import Settings

#: Under $RABBITRUN_HOME: the only folder `db clean` deletes XCom files from.
XCOM_FILES_FOLDER = "xcom_files"


class FileXComBackend:
    """Values larger than ``THRESHOLD_BYTES`` go to a file under ``$RABBITRUN_HOME/xcom_files``;
    the DB row keeps a small reference (type tag ``ref``). Point the folder at shared storage
    when workers run on several machines."""

    THRESHOLD_BYTES = 1024

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.home / XCOM_FILES_FOLDER
        self._inner = DatabaseXComBackend(settings.core.enable_xcom_pickling)

    def store(self, value: Any, *, key: str, ti: TaskInstanceKey) -> tuple[bytes, str]:
        data, value_type = self._inner.store(value, key=key, ti=ti)
        if len(data) <= self.THRESHOLD_BYTES:
            return data, value_type
        path = self.folder / ti.dag_id / ti.run_id.replace("/", "_") / ti.task_id / f"{uuid.uuid4().hex}.{value_type}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return json.dumps({"path": str(path), "type": value_type, "bytes": len(data)}).encode(), REF

    def load(self, data: bytes, value_type: str) -> Any:
        if value_type != REF:
            return self._inner.load(data, value_type)
        ref = json.loads(data)
        try:
            content = Path(ref["path"]).read_bytes()
        except OSError as exc:
            raise XComError(f"XCom file {ref['path']} is missing: {exc}") from exc
        return self._inner.load(content, ref["type"])
