"""etle.ingest stage."""
