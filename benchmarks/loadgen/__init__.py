"""The pieces of `benchmarks/load.py`: PostgreSQL, the served app, the clients, the checks."""
