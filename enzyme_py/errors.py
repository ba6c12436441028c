"""The exception tree of :mod:`enzyme_py`.

Every error raised on purpose by this package derives from :class:`EnzymePyError` and
also from the built-in exception it resembles, so callers may catch either::

    EnzymePyError
    ├── IRParseError (ValueError)          LLVM IR text or bitcode did not parse
    ├── CompileError (RuntimeError)        clang, the verifier, the optimiser or the JIT failed
    ├── UnsupportedError (NotImplementedError)  code enzyme_py refuses to differentiate:
    │                                      inline assembly, OpenMP, Enzyme's source-level
    │                                      interface, a construct the numba lowering lacks
    ├── EnzymeError (RuntimeError)         Enzyme reported a problem while differentiating
    │   ├── NoDerivativeError              an instruction or call has no known derivative
    │   ├── NoShadowError                  a value needs a shadow that cannot be built
    │   ├── IllegalTypeAnalysisError       type analysis found conflicting types
    │   ├── NoTypeError                    type analysis could not deduce a needed type
    │   ├── IllegalFirstPointerError       an illegal first pointer was seen
    │   ├── InternalError                  an internal Enzyme error
    │   ├── TypeDepthExceededError         a type tree grew deeper than allowed
    │   ├── DiagnosticError                an LLVM error diagnostic during differentiation
    │   └── EnzymeCrashError               the isolation worker died (assertion, exit, signal)
    ├── ProgramExit (RuntimeError)         compiled code called exit(), abort() or failed an assert()
    └── LibraryError (OSError)             libLLVM / LLVMEnzyme could not be found or loaded

    EnzymeWarning (UserWarning)            Enzyme's own pass warned (as the clang plugin does)

Invalid requests (wrong arity, an activity that does not fit a parameter's type, a
wrong dtype, ...) raise plain :class:`TypeError` or :class:`ValueError` before any
native code runs.
"""

from __future__ import annotations

__all__ = [
    "CompileError",
    "DiagnosticError",
    "EnzymeCrashError",
    "EnzymeError",
    "EnzymePyError",
    "EnzymeWarning",
    "IRParseError",
    "IllegalFirstPointerError",
    "IllegalTypeAnalysisError",
    "InternalError",
    "LibraryError",
    "NoDerivativeError",
    "NoShadowError",
    "NoTypeError",
    "ProgramExit",
    "TapeError",
    "TypeDepthExceededError",
    "UnsupportedError",
    "error_class_for",
]


class EnzymePyError(Exception):
    """Base class of every error raised on purpose by :mod:`enzyme_py`."""


class IRParseError(EnzymePyError, ValueError):
    """LLVM IR text or bitcode did not parse.

    ``message`` is the parser's message; ``line`` the 1-based line of the error in the
    IR text (``None`` for bitcode or when the parser gave none).
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"LLVM IR did not parse{where}: {message}")


class CompileError(EnzymePyError, RuntimeError):
    """clang, the IR verifier, the optimiser, code generation or the JIT failed.

    ``output`` holds the tool's full output (clang's stderr, the verifier's report).
    """

    def __init__(self, message: str, output: str = "") -> None:
        self.message = message
        self.output = output
        text = message if not output else f"{message}\n{output.rstrip()}"
        super().__init__(text)


class EnzymeError(EnzymePyError, RuntimeError):
    """Enzyme reported a problem; no derivative was produced.

    ``message`` is Enzyme's message, ``instruction`` the offending LLVM instruction as
    text (``None`` when Enzyme named none), ``error_type`` Enzyme's numeric ErrorType
    (``None`` for an LLVM diagnostic), ``reports`` every report of the failed request.
    """

    error_type: int | None = None

    def __init__(
        self,
        message: str,
        instruction: str | None = None,
        *,
        function: str | None = None,
        reports: tuple[tuple[int | None, str, str | None], ...] = (),
    ) -> None:
        self.message = message
        self.instruction = instruction
        self.function = function
        self.reports = reports
        head = f"Enzyme could not differentiate {function!r}" if function else "Enzyme failed"
        text = f"{head}: {message.strip()}"
        if instruction:
            text += f"\n  at: {instruction.strip()}"
        if len(reports) > 1:
            text += f"\n  ({len(reports) - 1} more report(s) in .reports)"
        super().__init__(text)


class NoDerivativeError(EnzymeError):
    """An instruction or call (e.g. to an undefined external function) has no derivative."""

    error_type = 0


class NoShadowError(EnzymeError):
    """A value needs a shadow (derivative storage) that Enzyme cannot build."""

    error_type = 1


class IllegalTypeAnalysisError(EnzymeError):
    """Type analysis found conflicting types for one value (e.g. used as int and double)."""

    error_type = 2


class NoTypeError(EnzymeError):
    """Type analysis could not deduce a type Enzyme needs (e.g. an untyped memcpy)."""

    error_type = 3


class IllegalFirstPointerError(EnzymeError):
    """Enzyme saw an illegal first pointer."""

    error_type = 4


class InternalError(EnzymeError):
    """Enzyme reported an internal error."""

    error_type = 5


class TypeDepthExceededError(EnzymeError):
    """A type tree grew deeper than Enzyme's limit (``EnzymeMaxTypeDepth``)."""

    error_type = 6


class DiagnosticError(EnzymeError):
    """LLVM emitted an error diagnostic while the derivative was being built."""


class EnzymeCrashError(EnzymeError):
    """The isolation worker compiling a request died: an Enzyme/LLVM assertion
    (``SIGABRT``), ``exit()``, a crash (``SIGSEGV``) or a timeout.  Only that request
    failed; the worker is restarted for the next one (:mod:`enzyme_py.isolation`).

    ``returncode`` is the worker's exit status (negative: ``-signal``), ``signal`` the
    signal name or ``None``, ``stderr`` the tail of what the worker printed.
    """

    def __init__(
        self,
        message: str,
        *,
        function: str | None = None,
        returncode: int | None = None,
        signal: str | None = None,
        stderr: str = "",
    ) -> None:
        self.returncode = returncode
        self.signal = signal
        self.stderr = stderr
        super().__init__(message, None, function=function)
        if stderr.strip():
            tail = "\n    ".join(stderr.strip().splitlines()[-15:])
            self.args = (f"{self.args[0]}\n  worker stderr (tail):\n    {tail}",)


class UnsupportedError(EnzymePyError, NotImplementedError):
    """The code uses a construct enzyme_py refuses to differentiate (the message names it,
    the function using it and what to do instead); refused before Enzyme runs, because
    Enzyme would abort the process or silently ignore it."""


class ProgramExit(EnzymePyError, RuntimeError):
    """Compiled code called ``exit()``, ``abort()`` or failed an ``assert()``: instead of
    ending the Python process, the call was abandoned there (as ``longjmp`` abandons
    frames: no C++ destructor ran, what they allocated is leaked) and this is raised.

    ``kind`` is ``"exit"``, ``"abort"`` or ``"assert"``; ``status`` the exit status
    (134, as for ``SIGABRT``, after ``abort()`` or an assertion).  Output the program
    wrote to ``stdout`` was flushed first.
    """

    def __init__(self, message: str, *, kind: str = "exit", status: int = 1) -> None:
        self.kind = kind
        self.status = status
        super().__init__(message)


class TapeError(EnzymePyError, ValueError):
    """A split-mode tape was misused: reversed twice, passed to another thunk's reverse
    callable, or used after its module was closed (see :mod:`enzyme_py.split`)."""


class EnzymeWarning(UserWarning):
    """What Enzyme's own pass (run over a module that uses Enzyme's source-level
    interface) reports as a warning, as the clang plugin prints it: a type tree deeper
    than Enzyme's limit (truncated), mixed activity (Enzyme's default shadow used).
    Turn it into an error with ``warnings.simplefilter("error", EnzymeWarning)``."""


class LibraryError(EnzymePyError, OSError):
    """libLLVM-N or LLVMEnzyme-N could not be found, loaded or checked."""


_BY_TYPE: dict[int, type[EnzymeError]] = {
    cls.error_type: cls
    for cls in (
        NoDerivativeError,
        NoShadowError,
        IllegalTypeAnalysisError,
        NoTypeError,
        IllegalFirstPointerError,
        InternalError,
        TypeDepthExceededError,
    )
}


def error_class_for(error_type: int | None) -> type[EnzymeError]:
    """The :class:`EnzymeError` subclass for Enzyme's numeric ErrorType.

    ``None`` (an LLVM diagnostic) gives :class:`DiagnosticError`; an unknown number
    gives :class:`EnzymeError` itself.

    >>> error_class_for(0).__name__
    'NoDerivativeError'
    """
    if error_type is None:
        return DiagnosticError
    return _BY_TYPE.get(error_type, EnzymeError)
