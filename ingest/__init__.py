"""The write path: subscriber, normalisation, pipeline, batch writer, ring buffer, file log."""
