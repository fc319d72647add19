"""Reading the server's HTML and spoiling its links, in tests that do not drive a browser."""

from __future__ import annotations

import re


def action_form(html: str, action: str) -> str:
    """The <form> of the ticket page posting to its action `action` (/tracker/tickets/{number}/do/{action}), or ''."""
    found = re.search(rf'<form method="post" action="/tracker/tickets/[^"]+/do/{action}".*?</form>', html, re.S)
    return found.group(0) if found else ""


def spoilt(signed: str) -> str:
    """A signed token or link (itsdangerous) with one character of its signature changed, as a mistyped address has
    it. Not its last characters: the final one of a base64 signature carries padding bits, so "…xx" written over
    "…xw" could still verify."""
    at = len(signed) - 10
    return signed[:at] + ("A" if signed[at] != "A" else "B") + signed[at + 1:]
