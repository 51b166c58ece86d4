"""Variables and Connections as rows: read, write, delete.

Encryption at rest and masking are layered on top by :mod:`rabbitrun.secrets`;
this module only moves rows.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rabbitrun.models.tables import ConnectionRow, VariableRow


def get_variable_row(session: Session, key: str) -> VariableRow | None:
    return session.execute(select(VariableRow).where(VariableRow.key == key)).scalar_one_or_none()


def put_variable_row(session: Session, key: str, val: str, *, description: str | None, is_encrypted: bool) -> None:
    row = get_variable_row(session, key)
    if row is None:
        session.add(VariableRow(key=key, val=val, description=description, is_encrypted=is_encrypted))
    else:
        row.val, row.is_encrypted = val, is_encrypted
        if description is not None:
            row.description = description


def delete_variable_row(session: Session, key: str) -> bool:
    return bool(session.execute(delete(VariableRow).where(VariableRow.key == key)).rowcount)  # type: ignore[attr-defined]


def get_connection_row(session: Session, conn_id: str) -> ConnectionRow | None:
    return session.execute(select(ConnectionRow).where(ConnectionRow.conn_id == conn_id)).scalar_one_or_none()
