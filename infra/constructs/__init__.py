"""One construct per capability; each owns its resources and the least-privilege grants they need."""
