"""aelab's own error types. Each message names the problem and how to fix it."""


class AelabError(Exception):
    """Base class of every error aelab raises on purpose; the CLI prints these without a traceback."""


class DataError(AelabError, ValueError):
    """A dataset is missing, corrupt, or not what it claims to be."""


class ConfigError(AelabError, ValueError):
    """A configuration value (flag, YAML key, argument) is not allowed."""


class TrainingError(AelabError, RuntimeError):
    """Training could not go on (for example the loss became NaN or infinite)."""
