"""Quality evaluations on labelled data (search, split, duplicate detection): dev tools, never deployed."""
