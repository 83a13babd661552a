"""Event taxonomy, ingestion, the event lake, the simulator, and the feature store."""
