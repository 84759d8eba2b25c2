"""Use cases for crm_files (to be built)."""
