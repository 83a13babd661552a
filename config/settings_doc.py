"""The README's configuration table, generated from the settings and their defaults.

``python -m config.settings_doc`` prints the table; ``--write README.md``
replaces it between the markers in place. A test fails when the README is stale.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from config.settings import DEFAULTS_FILE, ENV_PREFIX, Settings

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def settings_table() -> str:
    defaults = tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    rows = ["| key | environment variable | default | meaning |", "|---|---|---|---|"]
    for key, field in Settings.model_fields.items():
        default = defaults.get(key, "")
        shown = f"`{default}`" if default != "" else "(empty)"
        rows.append(f"| `{key}` | `{ENV_PREFIX}{key.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


def replace_table(document: str) -> str:
    """The document with the text between the markers replaced by the current table."""
    before, marker, rest = document.partition(START)
    if not marker or END not in rest:
        raise ValueError(f"the document has no {START} ... {END} section")
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{settings_table()}\n{END}{after}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="rewrite the table inside this file")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(replace_table(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(settings_table())


if __name__ == "__main__":
    main()
