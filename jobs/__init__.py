"""The scheduler worker, one module per job, and the job-run ledger."""
