"""The one exception type users see.

Every problem with user input (a config value, a data file, a run id) raises
:class:`BackpropLabError` with a one-line message that says what was wrong and how to fix it.
The console commands print that line without a traceback and exit non-zero.
"""


class BackpropLabError(ValueError):
    """A problem with user input, described in one line for people."""
