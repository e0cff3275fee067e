"""Real-estate listings: visual-feature split, vision cache, listings index, migration, ingest."""
