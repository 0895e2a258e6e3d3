"""autoenc's own error types. Each message names the problem and how to fix it."""


class AutoencError(Exception):
    """Base class of every error autoenc raises on purpose; the CLI prints these without a traceback."""


class DataError(AutoencError, ValueError):
    """A dataset is missing, corrupt, or not what it claims to be."""


class ConfigError(AutoencError, ValueError):
    """A configuration value (flag, YAML key, argument) is not allowed."""


class TrainingError(AutoencError, RuntimeError):
    """Training could not go on (for example the loss became NaN or infinite)."""
