"""`key=value` settings as written on a command line: `learn --set steps=3` and the benchmark's
`NAME[key=value,...]` both read them here, so a value means the same thing in either place.

Light on purpose (JSON only): the CLI reads flags with it before any method is imported.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import AnalogizeError


def parse_setting(text: str, source: str) -> tuple[str, Any]:
    """"key=value" -> (key, value). The value is read as JSON (3, 0.5, true, null, "text", [1, 2]),
    and a bare word that is not JSON is the string itself, so `base_model=runwayml/sd` needs no quotes.
    `source` names the flag in the error."""
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals or not key:
        raise AnalogizeError(f"{source}: {text!r} is not key=value; write e.g. steps=3")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
