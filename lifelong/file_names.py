"""The one rule for names that become file and folder names (a config's `name`, a strategy's `label`):
no path separator and no leading dot, so nothing is ever written outside the run folder."""

from __future__ import annotations

_NAME_PUNCTUATION = set("._-+=@ ")


def safe_file_name(value: str) -> str:
    """`value` when it can be used as one file name as it is; else ValueError saying what to write."""
    bad = sorted({c for c in value if not (c.isalnum() or c in _NAME_PUNCTUATION)})
    if bad or value.startswith(".") or not value.strip() or len(value) > 100:
        why = (f"holds {''.join(bad)!r}" if bad else "starts with a dot" if value.startswith(".")
               else "is blank" if not value.strip() else "is longer than 100 characters")
        raise ValueError(f"{value!r} {why}, and it names files and folders; use letters, digits, spaces and "
                         "._-+=@ (not starting with a dot), e.g. 'ewc-lambda_10'")
    return value
