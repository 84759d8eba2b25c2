"""Use cases: each opens one session, calls the domain, commits once."""
