"""Errors a user can act on.

Every error raised for bad user input (a config key, a missing data file, a corrupt
checkpoint) derives from :class:`UserError`. The command line prints its message as one
paragraph and exits with status 2, never with a traceback.
"""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong, the value, and the fix."""


class ConfigError(UserError, ValueError):
    """A config key, value or type is invalid."""


class DataMissingError(UserError, FileNotFoundError):
    """A data file is absent and could not be downloaded."""


class DataCorruptError(UserError, ValueError):
    """A data file exists but its bytes are wrong (checksum, truncation, format)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or run folder is missing, tampered with, or belongs to another config."""


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunInUseError(UserError, RuntimeError):
    """Another process holds the run folder's lock (training, evaluating, ...)."""


class TrainingInterrupted(UserError):
    """Ctrl-C: a checkpoint was written; the message says how to resume."""


class SiteError(UserError, ValueError):
    """The results site cannot be built: no runs found, or an output folder to protect."""
