"""A small module with the kind of notes todo-scan exists to surface."""

import time


def fetch(url, retries=3):
    # TODO: back off exponentially instead of sleeping a fixed second
    for attempt in range(retries):
        try:
            return _get(url)
        except OSError:
            time.sleep(1)
    # FIXME: the last error is swallowed; raise it so callers see why
    return None


def _get(url):
    raise OSError(f"offline: {url}")  # TODO(ops): point at the staging mirror
