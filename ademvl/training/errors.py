"""Why a training run stopped or would not start; the CLI prints the message as one line."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unusable run directory, ...); the message says why."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or inf; the message names the step and the last checkpoint (all are finite)."""


class NonFiniteWeightsError(TrainingError):
    """An optimizer step left trainable weights that are not finite; they are never saved."""
