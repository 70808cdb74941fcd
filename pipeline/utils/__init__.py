"""Small shared helpers: atomic file output and seeding."""
