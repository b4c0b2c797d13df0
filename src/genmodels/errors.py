"""Errors a user can cause and fix: shown as one clear message, never as a stack trace."""


class UserError(Exception):
    """Bad params, a missing or corrupt data file, bad input: the message names the fix."""
