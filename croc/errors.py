"""Errors that name the bad input and what is allowed."""


class InputError(ValueError):
    """A value given to the method (tensor, shape, option) is not acceptable; the message says why."""
