"""The one error type the CLI turns into a single sentence and exit code 2."""


class UserError(Exception):
    """Bad input or usage: missing file, wrong shape, invalid recipe, ...

    The message is one sentence saying what is wrong and where; the CLI prints it
    on stderr and exits 2. Anything else that escapes is a bug (exit 1).
    """
