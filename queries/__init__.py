"""The database: schema, engine, the batched insert, the reads the UI and API make."""
