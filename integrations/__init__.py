"""Integrations with outside systems; each hides its vendor's API behind the product's terms."""
