"""Click commands of the altcredit CLI, one module per area (named in web/cli.py)."""
