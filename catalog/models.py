"""The catalogue's tables (SQLAlchemy 2.0 typed ORM). The schema itself is created by Alembic migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Image(Base):
    """One file under an indexed root. ``error`` is set (and there are no signatures) if it is unreadable."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    #: The picture inside any uniform border someone added (equal to width x height without one).
    content_width: Mapped[int | None] = mapped_column(Integer)
    content_height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    indexed_at: Mapped[datetime] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)

    signatures: Mapped[list[Signature]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )


class Signature(Base):
    """The signature of one image by one method (bytes whose layout the method defines)."""

    __tablename__ = "signatures"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(32), ForeignKey("methods.name"), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)

    image: Mapped[Image] = relationship(back_populates="signatures")

    __table_args__ = (Index("ix_signatures_method", "method"),)


class MethodRecord(Base):
    """A method this catalogue computes, with the version (and parameters) its signatures came from."""

    __tablename__ = "methods"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))


class Root(Base):
    """A folder given to ``catalog index`` (or ``watch``); files that vanish under it leave the catalogue."""

    __tablename__ = "roots"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)
