"""The `specc` console entry point.

A cold `specc validate` / `specc summary` is mostly start-up: importing the command-line
framework (typer, click) costs about as much as the check of a small spec. When the
arguments are plain (spec paths and the commands' own options, written out), these two
commands run here directly, through the very functions the full command line calls
(``specc.checkcmd``), so they print the same bytes and exit with the same status. Anything
else (other commands, ``--help``, an unknown or malformed option, a value the full parser
would reject) goes to the full command line, ``specc.cli.main``, which reports it.
``SPECC_NO_FAST_PATH=1`` turns the fast path off.
"""

from __future__ import annotations

import os
import sys

EXIT_USAGE = 2

#: command -> {option: (field, takes a value)}; the short and long spellings of specc.cli
_OPTIONS = {
    "validate": {
        "--format": ("format", True),
        "-f": ("format", True),
        "--quiet": ("quiet", False),
        "-q": ("quiet", False),
        "--strict": ("strict", False),
    },
    "summary": {
        "--format": ("format", True),
        "-f": ("format", True),
        "--strict": ("strict", False),
        "--depth": ("depth", True),
    },
}


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, arguments) for a plain `validate` / `summary` command line, else None (the
    full command line handles it: help, errors, other commands)."""
    from .checkcmd import SUMMARY_FORMATS, VALIDATE_FORMATS

    if not argv or argv[0] not in _OPTIONS:
        return None
    command, options = argv[0], _OPTIONS[argv[0]]
    values: dict = {"specs": [], "format": "text", "strict": False}
    values.update({"quiet": False} if command == "validate" else {"depth": None})
    seen = set()
    rest = iter(argv[1:])
    for arg in rest:
        if not arg:
            return None
        if not arg.startswith("-"):
            values["specs"].append(arg)
            continue
        name, _, inline = arg.partition("=")
        if name not in options:
            return None
        field, takes_value = options[name]
        if field in seen:  # repeated: leave the precedence rules to the full parser
            return None
        seen.add(field)
        if not takes_value:
            if inline or "=" in arg:
                return None
            values[field] = True
            continue
        if "=" in arg:
            if not name.startswith("--"):
                return None
            value = inline
        else:
            value = next(rest, None)
            if value is None:
                return None
        if field == "format":
            allowed = VALIDATE_FORMATS if command == "validate" else SUMMARY_FORMATS
            if value not in allowed:
                return None
            values["format"] = value
        else:  # --depth: a non-negative decimal integer
            if not (value.isascii() and value.isdigit()):
                return None
            values["depth"] = int(value)
    if not values["specs"]:
        return None
    return command, values


def _streams_fit() -> bool:
    """click re-encodes output for a stream whose encoding is ASCII (or unknown); the fast
    path leaves such streams to it."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        if stream is None or not encoding:
            return False
        try:
            if codecs.lookup(encoding).name == "ascii":
                return False
        except LookupError:
            return False
    return True


_ANSI = None


def echo(message: str = "", err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for text: a newline, ANSI styles removed when the stream is not a
    terminal, flushed."""
    global _ANSI
    stream = sys.stderr if err else sys.stdout
    out = f"{message}\n" if nl else message
    if not out:
        stream.flush()
        return
    if "\x1b" in out and not stream.isatty():
        if _ANSI is None:
            import re

            _ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")  # click's strip_ansi
        out = _ANSI.sub("", out)
    stream.write(out)
    stream.flush()


def _disable_pydantic_plugin_loader() -> None:
    """With plugins disabled (``PYDANTIC_DISABLE_PLUGINS=__all__``, as main() sets unless
    the user chose otherwise), pydantic's plugin loader returns no plugins without looking,
    but importing it still imports ``importlib.metadata`` (~15 ms of a cold check). A
    stand-in module that returns the same empty result, and imports the real loader for
    anything else."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in ("__all__", "1", "true"):
        return
    name = "pydantic.plugin._loader"
    if name in sys.modules:
        return
    import types

    stub = types.ModuleType(name)

    def get_plugins():
        return ()

    def __getattr__(attr):  # anything else: the real module, which replaces the stand-in
        if attr.startswith("__"):
            raise AttributeError(attr)
        import importlib

        del sys.modules[name]
        real = importlib.import_module(name)
        pydantic.plugin._loader = real
        return getattr(real, attr)

    stub.get_plugins = get_plugins
    stub.__getattr__ = __getattr__
    import pydantic.plugin

    sys.modules[name] = pydantic.plugin._loader = stub


def fast(argv: list[str]) -> int | None:
    """Run a plain validate/summary command line; None when it is not one."""
    parsed = parse(argv)
    if parsed is None or not _streams_fit():
        return None
    from pathlib import Path

    from . import checkcmd

    command, v = parsed
    specs = [Path(s) for s in v["specs"]]
    try:
        if command == "validate":
            return checkcmd.validate(specs, v["format"], v["quiet"], v["strict"], echo)
        return checkcmd.summary(specs, v["format"], v["strict"], v["depth"], echo)
    except checkcmd.UsageExit as exc:
        return exc.code


def stdout_failed(exc: OSError) -> None:
    """One line on stderr and exit 2, without Python's flush-at-exit traceback."""
    import errno

    from .fsutil import reason_of

    if exc.errno != errno.EPIPE:  # a reader that went away (| head) is not an error to report
        try:
            sys.stderr.write(f"error: cannot write stdout: {reason_of(exc)}\n")
            sys.stderr.flush()
        except OSError:
            pass
    os._exit(EXIT_USAGE if exc.errno != errno.EPIPE else 0)


class _ClosedStream:
    """Stands in for a stream the shell closed (`specc summary x >&-`), which Python gives as
    None: writing fails as on a closed file (EBADF: one line on stderr, exit 2, see
    stdout_failed) instead of an AttributeError traceback at the final flush."""

    encoding, errors, closed = "utf-8", "strict", False

    def write(self, text: str) -> int:
        import errno

        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _closed_streams() -> None:
    if sys.stdout is None:
        sys.stdout = _ClosedStream()  # type: ignore[assignment]
    if sys.stderr is None:  # nowhere to say anything: messages are dropped
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def main() -> None:
    """Console entry point: the fast path for plain checks, else the full command line."""
    _closed_streams()
    # as specc.cli.main: no scan of every installed distribution for pydantic plugins
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:]
    if os.environ.get("SPECC_NO_FAST_PATH") != "1" and argv and argv[0] in _OPTIONS:
        # a short-lived process: the cyclic GC would only walk the objects that parsing
        # and the pydantic models create, again and again (most of a big spec's check)
        import gc

        gc.disable()
        _disable_pydantic_plugin_loader()
        try:
            try:
                status = fast(argv)
            finally:
                sys.stdout.flush()
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            sys.exit(130)
        except OSError as exc:  # writing to stdout failed (a full device, a closed pipe)
            stdout_failed(exc)
        else:
            if status is not None:
                sys.exit(status)
        gc.enable()
    from .cli import main as full

    full()


if __name__ == "__main__":
    main()
