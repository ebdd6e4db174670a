"""The console script's entry point: the program loads with the garbage collector off.

Loading Typer, Rich, SQLAlchemy and pydantic makes a few hundred thousand long-lived
objects and no garbage worth collecting, yet the cyclic collector ran about 150 times
over them: 33 ms of a 0.95 s no-op import of 100,000 models, and 90 ms of a re-import
after edits (which makes more objects, so each full collection scans everything loaded).
So it stays off while the program loads; a command turns it back on when it opens the
catalog (``cli.catalog``), once its modules are imported (:func:`loaded`), with everything
loaded so far frozen out of its reach.
"""

from __future__ import annotations

import gc
import os
import sys

# The youngest generation is collected once this many more container objects live than at its last
# collection (Python's default is 700). A batch of results and rows is built, written and let go
# (by reference counting) well within this many, so it is no longer collected halfway, promoted
# and looked at again: a re-import after 1,000 edits spent 11.5 ms in 99 collections, and 5.6 ms
# in 2 at 20,000. Only objects still alive count, so it costs no memory.
YOUNG_OBJECTS = 50_000
EXIT_INTERRUPTED = 130  # errors.EXIT_INTERRUPTED: this module imports nothing more, to load in a blink


def main() -> None:
    """The ``lora`` console script.

    A Ctrl-C while the program loads exits 130 without a word (nothing was done yet); from
    then on :func:`lora_manager.cli.main` answers it.
    """
    try:
        sys.unraisablehook = _unraisable
        gc.disable()
        _fill_standard_streams()
        from lora_manager.cli import main as cli_main
    except KeyboardInterrupt:
        os._exit(EXIT_INTERRUPTED)
    cli_main()


# Set when a Ctrl-C struck where Python could not raise it (see :func:`_unraisable`): the command
# answers it at its next look (the import's stop flag; the exit code, 130).
interrupted = False


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C that struck inside a callback Python cannot raise from is noted, not printed.

    Such a callback (the weakref one by which an import lets go of its module lock, say) runs at
    moments no code of ours chooses: Python printed the ``KeyboardInterrupt`` there as "Exception
    ignored in ..." with a traceback, and the command went on as if no Ctrl-C had come. Raising
    it again from here would only make it this hook's own error, so it is noted in
    :data:`interrupted`. Anything else goes to Python's own hook.
    """
    global interrupted
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        interrupted = True
        return
    sys.__unraisablehook__(unraisable)


def _fill_standard_streams() -> None:
    """A closed stdin, stdout or stderr (``lora import LIB >&-`` from a script) becomes /dev/null.

    Else the first file opened takes its number: the catalog would be file 1, and whatever is
    printed would be written into it (and Python's ``sys.stdout`` is None: printing raised).
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # pragma: no cover - the lowest free number is this one
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - it lives as long as the process


def loaded() -> None:
    """The command has imported its modules: collect cycles again, leaving out what is loaded.

    Does nothing where :func:`main` did not turn the collector off (tests, the library used
    from another program): their collector is theirs to tune.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])
        gc.enable()
