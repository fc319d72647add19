"""phone digits: citizens' phone numbers stored as their digits (and a leading +), as intake now reads them

Numbers were stored as typed but for their spaces (139-0000-1111), so the same caller stood under several numbers
and the repeat look-up (重复件) missed the earlier tickets. The typed form is not kept: downgrading leaves the digits.

Revision ID: intake_0015
Revises: intake_0014
Create Date: 2026-11-28 09:00:00
"""
from alembic import op


revision = 'intake_0015'
down_revision = 'intake_0014'
branch_labels = None
depends_on = None
# Rows only: a step down leaves the schema as it was, which the migrations test may take as undoing nothing.
data_only = True


def upgrade() -> None:
    # replace() and LIKE read the same on SQLite and PostgreSQL.
    op.execute("UPDATE intake_tickets SET citizen_phone = replace(replace(citizen_phone, ' ', ''), '-', '') "
               "WHERE citizen_phone LIKE '% %' OR citizen_phone LIKE '%-%'")


def downgrade() -> None:
    pass
