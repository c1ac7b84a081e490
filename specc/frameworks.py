"""Importing TensorFlow / Keras without their start-up chatter.

TensorFlow's C++ runtime writes lines such as "All log messages before absl::InitializeLog()
is called are written to STDERR" and "oneDNN custom operations are on ..." straight to file
descriptor 2 while its shared libraries load, before any Python logging exists, and
``TF_CPP_MIN_LOG_LEVEL`` does not reach them. So every place in specc that needs TensorFlow
or Keras imports it through :func:`import_keras` / :func:`import_tensorflow`, which

- set ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it) before the import, for the C++
  INFO/WARNING lines logged after start-up;
- point file descriptor 2 at a temporary file *during the import only* (the user's stderr is
  never filtered afterwards) and replay what was caught when the import fails, so a broken
  installation still explains itself;
- turn TensorFlow's and absl's Python loggers down to errors.

Numerics are untouched: oneDNN stays as TensorFlow configures it (``TF_ENABLE_ONEDNN_OPTS``
is not set), only its announcement is silenced. With ``--verbose`` (or ``SPECC_VERBOSE=1``)
nothing is silenced and the lines appear as TensorFlow writes them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

_verbose: bool | None = None


def set_verbose(value: bool) -> None:
    """``--verbose``: let TensorFlow's own log lines through (call before the first import)."""
    global _verbose
    _verbose = bool(value)
    if value:
        os.environ["SPECC_VERBOSE"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # TensorFlow's INFO lines too


def verbose() -> bool:
    if _verbose is not None:
        return _verbose
    return os.environ.get("SPECC_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def _stderr_fd_captured():
    """Send fd 2 to a temporary file for the duration; replay it if the body raises."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            text = caught.read().decode("utf-8", "replace")
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """``import tensorflow``, quietly unless verbose. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if verbose():
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_fd_captured():
        import tensorflow as tf
    _quiet_python_loggers()
    return tf


def import_keras():
    """``import keras`` (on TensorFlow), quietly unless verbose. Returns the module."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    import_tensorflow()
    if verbose():
        import keras

        return keras
    with _stderr_fd_captured():
        import keras
    return keras


def _quiet_python_loggers() -> None:
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
