"""Why a step could not produce a report: the contract's `run-error`, as exceptions.

Raise them from `Plugin.run` (or `parse_config`); the helper also maps Python's own
exceptions (see `sluice_plugin.plugin.run_plugin`)."""


class RunError(Exception):
    """Base of the three kinds; `kind` is the contract's case name."""

    kind = "failed"

    @property
    def message(self):
        return str(self.args[0]) if self.args else ""


class InvalidConfig(RunError):
    """The `with` table made no sense, even though it matched the schema."""

    kind = "invalid-config"


class Denied(RunError):
    """The step needed access it was not granted; the message names the grant to add."""

    kind = "denied"


class Failed(RunError):
    """Anything else."""

    kind = "failed"
