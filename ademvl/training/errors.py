"""Why a training run stopped or would not start; the CLI prints the message as one line."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unusable run directory, ...); the message says why."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or inf; the message names the step and the last checkpoint (all are finite)."""


class NonFiniteWeightsError(TrainingError):
    """An optimizer step left trainable weights that are not finite; they are never saved."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C (SIGINT) stopped the run; the message names the last checkpoint and how to resume."""


class DiskFullError(TrainingError):
    """A save ran out of disk space; its temporary files are removed and the message says how much is needed."""
