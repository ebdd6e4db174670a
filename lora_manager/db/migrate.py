"""Bring a catalog's schema to the one this release expects.

Until the Alembic history lands, a new catalog is created from the models.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lora_manager.db.schema import Base
from lora_manager.errors import LoraError


def ensure_schema(engine: Engine) -> None:
    """Create the tables a new catalog lacks."""
    try:
        Base.metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise LoraError(f"cannot open the catalog at {engine.url!r}: {exc.__cause__ or exc}") from None
