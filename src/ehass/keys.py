"""`ehass keys rotate`: re-encrypt every encrypted value under the newest key.

Runs beside live servers: each batch is its own short transaction, old keys keep
decrypting until the run ends, and a value already under the newest key is skipped, so
an interrupted run simply continues where it stopped when started again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tqdm import tqdm

from ehass.core.crypto import Keyring


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    key: str
    column: str

    @property
    def context(self) -> str:
        return f"{self.table}.{self.column}"


ENCRYPTED_COLUMNS = (
    EncryptedColumn("patients", "id", "date_of_birth"),
    EncryptedColumn("appointments", "id", "reason"),
    EncryptedColumn("mfa_factors", "user_id", "secret"),
    EncryptedColumn("idempotency_records", "id", "response_body"),
)


async def rotate(
    engine: AsyncEngine, keyring: Keyring, *, batch_size: int = 500, progress: bool = True
) -> int:
    """Re-encrypts what is not under the newest key; returns how many values changed."""
    changed = 0
    for column in ENCRYPTED_COLUMNS:
        async with engine.connect() as connection:
            # Identifiers come from the fixed list above, never from input.
            total = await connection.scalar(
                text(f"SELECT COUNT(*) FROM {column.table} WHERE {column.column} IS NOT NULL")  # noqa: S608
            )
        bar = tqdm(
            total=total,
            desc=column.context,
            unit="row",
            file=sys.stderr,
            disable=not progress,
        )
        last = None
        while True:
            async with engine.begin() as connection:
                where = f"{column.column} IS NOT NULL" + (
                    f" AND {column.key} > :last" if last is not None else ""
                )
                rows = (
                    await connection.execute(
                        text(
                            f"SELECT {column.key}, {column.column} FROM {column.table} "  # noqa: S608
                            f"WHERE {where} ORDER BY {column.key} LIMIT :limit"
                        ),
                        {"limit": batch_size} | ({"last": last} if last is not None else {}),
                    )
                ).all()
                if not rows:
                    break
                stale = [(key, value) for key, value in rows if not keyring.is_current(value)]
                for key, value in stale:
                    plain = keyring.decrypt(value, context=column.context)
                    await connection.execute(
                        text(
                            f"UPDATE {column.table} SET {column.column} = :value "  # noqa: S608
                            f"WHERE {column.key} = :key"
                        ),
                        {"value": keyring.encrypt(plain, context=column.context), "key": key},
                    )
                changed += len(stale)
                last = rows[-1][0]
                bar.update(len(rows))
        bar.close()
    return changed
