"""Range checks of config values that can report every problem at once.

A schema's ``__post_init__`` calls ``_require(condition, message)``: it raises ValueError, or,
inside ``collecting_problems()`` (as the config loader builds a config), records the message and
lets the other checks run.
"""

from __future__ import annotations

import contextlib
import contextvars

_problems: contextvars.ContextVar[list | None] = contextvars.ContextVar("config_problems", default=None)


def _require(condition: bool, message: str) -> None:
    """A range check of a config value: raises ValueError, or inside ``collecting_problems``
    records the message and lets the other checks run (so that all problems are reported at once)."""
    if not condition:
        sink = _problems.get()
        if sink is None:
            raise ValueError(message)
        sink.append(message)


@contextlib.contextmanager
def collecting_problems():
    """Within the block, failed ``_require`` checks are appended to the yielded list instead of raising."""
    found: list[str] = []
    token = _problems.set(found)
    try:
        yield found
    finally:
        _problems.reset(token)
