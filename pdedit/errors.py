"""Errors that reach the user. Only `pdedit.cli` turns them into exit codes (2)."""


class PdeditError(Exception):
    """Base of every error whose message is meant for the user: it names the input and the fix."""

    exit_code = 2


class BadInput(PdeditError, ValueError):
    """A file, value or option given by the user cannot be used as it is.

    Also a ValueError: code that drives PixelDancePipeline as any diffusers pipeline catches that.
    """


class MissingModel(PdeditError):
    """A model folder or weight file is absent or is not the kind of model expected."""


class Unsupported(PdeditError):
    """The request is valid but this installation or device cannot do it."""
