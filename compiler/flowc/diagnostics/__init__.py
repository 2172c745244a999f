"""Diagnostics: the one model (:mod:`.model`), the code registry (:mod:`.codes`), renderers and suggestions.

Everything that reports a problem with the input imports the model from here.
"""

from flowc.diagnostics.model import CompileError, Diagnostic, Severity, Span, UserError

__all__ = ["CompileError", "Diagnostic", "Severity", "Span", "UserError"]
