"""Content hash per run: a re-sent run id is a duplicate only with the same content.

Adds ``runs.content_sha256`` (sha256 of the canonical payload, see
``wattbench.core.canonical``). Nullable: runs stored before this revision keep NULL and
are hashed from their payload (or rebuilt from their rows) the first time their id
arrives again, which then fills it in.

Revision ID: 0004_content
Revises: 0003_suites
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_content"
down_revision = "0003_suites"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("content_sha256")
