"""The one exception type the CLI turns into a one-line error."""


class UserError(Exception):
    """Bad input from the user: a file, key or value that cannot be used.

    The message must fit on one line and name the offending file, key or value.
    The CLI prints it as ``gan-tpu: error: <message>`` and exits non-zero,
    without a traceback.
    """
