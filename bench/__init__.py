"""`make bench`: live seat selection figures against a fresh local stack (see README.md)."""
