"""tickets: callers' numbers kept plain (digits and a leading +)

A number kept as it was typed (139-0000-1111, 010 1234 5678, (010)12345678, full-width １３９…) was not found by
the look-up the operator console makes with digits only (list_tickets(phone=…)). The tracker now keeps and looks
numbers up plain (jiesu.text.plain_phone), as intake stores them (intake_0015); this makes the numbers
kept before plain the same way, as far as SQL can: spaces, dashes and round brackets (ASCII and full-width)
dropped, full-width digits and ＋ made ASCII. Intake let through digits, spaces, '-' and a leading '+'; the rest
is for good measure. Three UPDATEs of the rows that change, in SQL that SQLite and PostgreSQL both run
(nested replace()).

The characters are listed here, not imported: a migration does what it did when it was written.

Downgrade changes nothing: how each number was written is not kept.

Revision ID: tracker_0017
Revises: tracker_0016
Create Date: 2026-11-25 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'tracker_0017'
down_revision = 'tracker_0016'
branch_labels = None
depends_on = None
# Rows only, no schema: the down-and-up test of migrations expects no schema change from it.
data_only = True

# (what, what it becomes), a few at a time: SQLite's parser refuses replace() nested thirty deep. Full-width digits and
# plus sign made ASCII; spaces and dashes dropped; round brackets dropped.
REPLACEMENTS = (
    (*((chr(0xFF10 + i), str(i)) for i in range(10)), ('\uff0b', '+')),
    tuple((ch, '') for ch in (' ', '\t', '\u3000', '\u00a0',  # spaces: ASCII, ideographic, no-break
                              '-', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2015', '\u2212', '\uff0d',
                              '\u30fc')),  # the long-vowel mark a Chinese keyboard gives for the key beside 0
    tuple((ch, '') for ch in ('(', ')', '\uff08', '\uff09')),
)


def plain(column, replacements):
    """`column` with each of `replacements` made: replace(replace(…(column, '０', '0')…), '＋', '+')."""
    for old, new in replacements:
        column = sa.func.replace(column, sa.literal(old, sa.String), sa.literal(new, sa.String))
    return column


def upgrade() -> None:
    tickets = sa.table('tracker_tickets', sa.column('citizen_phone', sa.String))
    phone = tickets.c.citizen_phone
    for replacements in REPLACEMENTS:  # one UPDATE each, of the rows it changes
        op.execute(tickets.update().where(phone.is_not(None), plain(phone, replacements) != phone)
                   .values(citizen_phone=plain(phone, replacements)))


def downgrade() -> None:
    pass
