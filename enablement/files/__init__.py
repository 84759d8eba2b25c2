"""Record files at the edge: JSON Lines and CSV reading and writing, and the file schemas."""
