"""What every metadisk web page shares, whatever serves it: templates, headers, style, charts.

The file manager (served by the gateway), the bridge console and the farmer dashboard are
server-rendered HTML (Jinja2) with small vanilla modules for what must happen in the page
(uploads with progress, drag and drop). No page loads anything from another origin, so they work
offline, and every answer carries a strict Content-Security-Policy.

- `environment(package)`: a Jinja2 environment over the role's ``templates/`` and the shared
  ones here (``base.html``, ``macros.html``), autoescaping on.
- `SECURITY_HEADERS`, `csp()`: the headers every page is served with.
- `static(name, package)`: a role's own static files, else the shared stylesheet.
- `charts.line_chart`, `charts.bar_chart`: SVG charts rendered on the server.
"""

from __future__ import annotations

import functools
import importlib.resources

import jinja2

STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def csp(*, connect: str = "'self'", img: str = "'self' data: blob:") -> str:
    """A Content-Security-Policy allowing only this origin: no inline script, no framing."""
    return (
        "default-src 'none'; "
        "script-src 'self'; "
        "style-src 'self'; "
        f"img-src {img}; "
        "media-src 'self' blob:; "
        f"connect-src {connect}; "
        "form-action 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )


SECURITY_HEADERS = {
    "Content-Security-Policy": csp(),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def environment(package: str) -> jinja2.Environment:
    """Templates of `package` (its ``templates/`` folder), then the shared ones."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PackageLoader(package, "templates"),
            jinja2.PackageLoader("metadisk.runtime.web", "templates"),
        ]
    )
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["size"] = human_size
    return env


@functools.cache
def static(name: str, package: str | None = None) -> tuple[bytes, str]:
    """(content, content type) of static file `name`: from `package`'s ``static/`` folder if
    it has one of that name, else the shared one; KeyError for any other name."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
        raise KeyError(name)
    for home in (package, "metadisk.runtime.web"):
        if home is not None:
            resource = importlib.resources.files(home) / "static" / name
            if resource.is_file():
                return resource.read_bytes(), STATIC_TYPES[suffix]
    raise KeyError(name)


def human_size(size: int | float | None) -> str:
    """Bytes in binary units, as the CLI shows them (1.5 MiB)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
