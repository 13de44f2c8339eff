"""One exception hierarchy: the CLI turns it into one line, the receivers into protocol codes."""


class ServicemapError(Exception):
    """Base of every error servicemap raises on purpose."""


class SourceError(ServicemapError):
    """A source (file or dataset) cannot be read: missing, empty, malformed or unknown format."""


class InvalidSpanError(ServicemapError):
    """A span breaks the data model (wrong id length, missing ids)."""


class RenderError(ServicemapError):
    """A map cannot be rendered in the requested format."""


class UsageError(ServicemapError):
    """A command-line value is not valid (a bad time, an unknown option value)."""


class RulesError(ServicemapError):
    """A rules or alerts file is not valid; the message names the file, the line and the field."""


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message; `default` (else the type's name) when empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else (type(exc).__name__ if default is None else default)
