"""URLs and error texts shown without their secrets: scheme and host, never userinfo, query or a secret path.

A configured URL may carry a token anywhere: ``https://user:password@host``, ``?api_key=…`` or a secret path
(``/hooks/T0/B0/<token>``). Log lines, dead-letter headers and ``doctor`` show it through ``safe_url``; text that
may quote it (an exception from ``requests`` names the path and query it failed on) goes through ``scrub``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

__all__ = ["safe_url", "scrub"]

_HIDDEN = "…"
# urllib3's "Max retries exceeded with url: /path?query (Caused by ...)" and requests' "Invalid URL '...'".
_QUOTED_URL = re.compile(r"(url: )\S+|(URL ')[^']*(')", re.IGNORECASE)


def safe_url(url: str | None, *, path: bool = False) -> str:
    """``scheme://host[:port]`` of ``url``, plus its path when ``path`` (for URLs whose path is no secret).

    Userinfo, query and fragment are never kept. Something that is no URL at all is shown as ``…``.
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:  # a port that is no number, an unbalanced IPv6 bracket
        return _HIDDEN
    if not parts.scheme or not host:
        return _HIDDEN
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    shown = f"{parts.scheme.lower()}://{netloc}"
    return shown + parts.path if path else shown


def scrub(text: str, *urls: str | None) -> str:
    """``text`` with every secret-bearing part of ``urls`` (userinfo, path, query, fragment) replaced by ``…``.

    Each part is looked for as written, percent-decoded and percent-encoded, since libraries quote what they
    report; a URL quoted whole (``url: …``, ``URL '…'``) is dropped too, whichever URL it is.
    """
    fragments: set[str] = set()
    for url in urls:
        if not url:
            continue
        fragments.add(url)
        try:
            parts = urlsplit(url.strip())
            secrets = [parts.username, parts.password, parts.netloc.rpartition("@")[0], parts.query, parts.fragment]
        except ValueError:
            continue
        if parts.path not in ("", "/"):
            secrets.append(parts.path)
        for secret in secrets:
            if secret:
                fragments.update({secret, unquote(secret), quote(unquote(secret), safe="/=&:@")})
    for fragment in sorted(fragments, key=len, reverse=True):
        text = text.replace(fragment, _HIDDEN)
    return _QUOTED_URL.sub(lambda m: f"{m.group(1)}{_HIDDEN}" if m.group(1) else f"{m.group(2)}{_HIDDEN}'", text)
