"""The one error type the CLI turns into a single sentence and exit code 2."""


class UserError(Exception):
    """Bad input or usage: missing file, wrong shape, invalid recipe, ...

    The message is one sentence saying what is wrong and where; the CLI prints it
    on stderr and exits 2. Anything else that escapes is a bug (exit 1).
    """


def reason(e: BaseException, limit: int = 160) -> str:
    """A library exception as one short line for a UserError or a per-artifact error.

    Some messages are empty (EOFError on a 0-byte file) and OpenVINO's start with a bare
    "Exception from src/...:132:" line, so take the first line that says something."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = next((line for line in lines if not line.endswith(":")), lines[0] if lines else "")
    text = text or f"{type(e).__name__}, no message"
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]  # end on a whole word, and say that more was left out
    return f"{cut.rstrip(',;:')}…"
