"""The build stage's errors, each a one-line message naming what is wrong and the fix."""


class DataError(Exception):
    """The input series or a flag is unusable (exit code 2); names the file, row or date and the fix."""


class ModelError(Exception):
    """The series is fine but no model could be fitted, saved or reloaded (exit code 1)."""
