"""Progress bars (tqdm) for long work: on by default in an interactive session, off otherwise."""

from __future__ import annotations

import os
import sys
import threading

ENV_VAR = "BAYESCALE_PROGRESS"  # "0" or "1": the default of every progress_bar=None, whatever the session


def interactive() -> bool:
    """True in a notebook kernel or when standard error is a terminal (``$BAYESCALE_PROGRESS`` overrides)."""
    setting = os.environ.get(ENV_VAR)
    if setting in ("0", "1"):
        return setting == "1"
    if "ipykernel" in sys.modules:  # a Jupyter kernel: tqdm.auto draws a widget or text there
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def wanted(progress_bar: bool | None) -> bool:
    """The ``progress_bar`` argument of a long job resolved: ``None`` means :func:`interactive`."""
    if progress_bar is None:
        return interactive()
    if not isinstance(progress_bar, bool):
        raise TypeError(f"progress_bar must be True, False or None (shown when interactive), got {progress_bar!r}")
    return progress_bar


class Progress:
    """A tqdm bar over ``total`` units when ``enabled`` (``None``: when interactive); a context manager.

    Calls may come from several threads (chains or fits running at once).

    Examples
    --------
    >>> with Progress(False, 10, "nothing shown") as bar:
    ...     bar(5, "warmup")
    >>> bar.enabled
    False
    """

    def __init__(self, enabled: bool | None, total: int, desc: str, unit: str = "it"):
        self.enabled = wanted(enabled)
        self._bar = None
        self._lock = threading.Lock()
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit)

    def grow(self, n: int) -> None:
        """``n`` more units of work than the bar was made for."""
        if self._bar is not None:
            with self._lock:
                self._bar.total += n
                self._bar.refresh()

    def __call__(self, n: int, phase: str = "") -> None:
        if self._bar is not None:
            with self._lock:
                if phase:
                    self._bar.set_postfix_str(phase, refresh=False)
                self._bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
