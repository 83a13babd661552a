"""The reason catalogue, published: docs/reasons.json (machine-readable) and docs/reasons.md.

``python -m scoring.reason_catalogue`` rewrites both from config/reasons.toml
and config/features.toml; a test fails when the committed files are stale.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from config.feature_definitions import FeatureSet, load_feature_definitions
from config.reasons import ReasonCatalogue, check_against, load_reasons

DOCS = Path(__file__).resolve().parent.parent / "docs"
JSON_FILE = DOCS / "reasons.json"
MARKDOWN_FILE = DOCS / "reasons.md"


def catalogue_document(catalogue: ReasonCatalogue, feature_set: FeatureSet) -> dict[str, Any]:
    """Every reason with its code, dimension, texts, features and whether it has a tip."""
    assigned = check_against(catalogue, feature_set)
    reasons = []
    for reason in catalogue.reasons:
        features = [name for name, owner in assigned.items() if owner is reason]
        dimension = feature_set.get(features[0]).dimension
        reasons.append({
            "code": reason.code, "dimension": dimension,
            "dimension_en": feature_set.dimensions[dimension].en,
            "dimension_zh": feature_set.dimensions[dimension].zh,
            "text_en": reason.text_en, "text_zh": reason.text_zh, "features": features,
            "tip": None if reason.tip is None else {"en": reason.tip.en, "zh": reason.tip.zh,
                                                    "unit": reason.tip.unit},
        })
    return {"definitions_hash": feature_set.hash, "max_reasons": catalogue.limits.max_reasons,
            "reasons": reasons}


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def render_markdown(document: dict[str, Any]) -> str:
    lines = [
        "# Reason codes", "",
        "Generated from `config/reasons.toml` by `python -m scoring.reason_catalogue`; "
        "do not edit by hand. The same catalogue is in `reasons.json`.", "",
        f"A score carries up to {document['max_reasons']} reasons: the groups of features "
        "that cost it the most points, the costliest first (see explanations.md). "
        "Codes are stable and never reused.", "",
        "| code | dimension | reason | 原因 | features | tip |",
        "|---|---|---|---|---|---|",
    ]
    for reason in document["reasons"]:
        features = ", ".join(f"`{name}`" for name in reason["features"])
        dimension = f"{reason['dimension_en']} {reason['dimension_zh']}"
        tip = "yes" if reason["tip"] else ""
        lines.append(f"| {reason['code']} | {dimension} | {reason['text_en']} | "
                     f"{reason['text_zh']} | {features} | {tip} |")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(text, encoding="utf-8")
    os.replace(draft, path)


def main() -> int:
    document = catalogue_document(load_reasons(), load_feature_definitions())
    write(JSON_FILE, render_json(document))
    write(MARKDOWN_FILE, render_markdown(document))
    sys.stdout.write(f"wrote {JSON_FILE.name} and {MARKDOWN_FILE.name} "
                     f"({len(document['reasons'])} reasons)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
