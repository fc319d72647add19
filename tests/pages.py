"""Reading the server's HTML in tests that do not drive a browser."""

from __future__ import annotations

import re


def action_form(html: str, action: str) -> str:
    """The <form> of the ticket page posting to its action `action` (/tracker/tickets/{number}/do/{action}), or ''."""
    found = re.search(rf'<form method="post" action="/tracker/tickets/[^"]+/do/{action}".*?</form>', html, re.S)
    return found.group(0) if found else ""
