"""Who and where a step is, what it was granted, and paths resolved the way the host
resolves them.

WASI has no working directory of its own: a relative path in a step's configuration is
relative to the pipeline's folder (`workdir`), and `StepContext.resolve` makes it
absolute. A folder outside the step's grants does not exist for the plugin (Python sees
`FileNotFoundError` or a false `os.path.isdir`); `StepContext.require_read` and
`require_write` check the `grants` import first and raise `Denied` naming the grant
to add, so the pipeline's author knows what to change."""

import os
import posixpath
from dataclasses import dataclass, field

from .errors import Denied


def normalize(path):
    """`path` with `.` removed and `..` resolved lexically, as the host resolves grants."""
    return posixpath.normpath(path) if path else path


@dataclass
class Grants:
    """What the step was granted, as the `grants` import says (absolute, canonical
    folders for `read` and `write`)."""

    read: list = field(default_factory=list)
    write: list = field(default_factory=list)
    exec: list = field(default_factory=list)
    net: list = field(default_factory=list)
    env: list = field(default_factory=list)
    secrets: list = field(default_factory=list)
    targets: list = field(default_factory=list)

    def covers(self, path, write=False):
        """Whether absolute `path` lies inside a granted folder (`write`: a write grant)."""
        path = normalize(path)
        folders = self.write if write else list(self.read) + list(self.write)
        for folder in folders:
            folder = normalize(folder)
            if path == folder or path.startswith(folder.rstrip("/") + "/"):
                return True
        return False


@dataclass
class StepContext:
    """Everything about the step besides its configuration. `grants` is None natively
    (no host to ask), and then no path is refused."""

    workdir: str
    grants: "Grants | None" = None
    run_id: str = ""
    pipeline: str = ""
    stage: str = ""
    step: str = ""
    attempt: int = 1
    #: `(step, name, value)` of the outputs of the steps that finished before this one.
    outputs: list = field(default_factory=list)

    def resolve(self, path):
        """`path` made absolute against the pipeline's folder, `..` resolved."""
        return normalize(os.path.join(self.workdir, path))

    def relative(self, path):
        """How a report names `path`: relative to the pipeline's folder with `/`, or
        absolute when it lies outside it."""
        absolute = self.resolve(path)
        workdir = normalize(self.workdir)
        if absolute == workdir:
            return "."
        prefix = workdir.rstrip("/") + "/"
        return absolute[len(prefix):] if absolute.startswith(prefix) else absolute

    def output(self, step, name):
        """The value `step` published as `name`, or None."""
        return next((v for s, n, v in self.outputs if s == step and n == name), None)

    def require_read(self, path):
        """`path` resolved; raises `Denied` when no read or write grant covers it."""
        return self._require(path, write=False)

    def require_write(self, path):
        """`path` resolved; raises `Denied` when no write grant covers it."""
        return self._require(path, write=True)

    def _require(self, path, write):
        absolute = self.resolve(path)
        if self.grants is None or self.grants.covers(absolute, write=write):
            return absolute
        # The folder may be granted under another name (a link on the way to it):
        # what can be reached is granted.
        if not write and os.path.exists(absolute):
            return absolute
        raise Denied(denied_message(path, write))

    def denial_for(self, error):
        """`Denied` for an OSError on a path outside every grant, else None."""
        filename = getattr(error, "filename", None)
        if self.grants is None or not isinstance(filename, str):
            return None
        absolute = self.resolve(filename)
        if self.grants.covers(absolute):
            return None
        return Denied(denied_message(self.relative(filename), write=False))


def denied_message(path, write):
    """What a denied path says: which grant to add, and where."""
    kind = "write" if write else "read"
    verb = "write" if write else "read"
    return (
        f"cannot {verb} `{path}`: the step has no {kind} grant covering it; "
        f'add `{kind} = ["{path}"]` to the step\'s grants'
    )
