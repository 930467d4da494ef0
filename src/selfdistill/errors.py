"""The one exception type for bad user input; the CLI prints it as a single line and exits 2."""


class SelfdistillError(Exception):
    """A problem with the user's input (missing file, malformed row, unknown spec or model)."""


def located(path: object, line: int | None, message: str) -> SelfdistillError:
    """An error that names the file (and line, when known) it is about."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return SelfdistillError(f"{where}: {message}")
