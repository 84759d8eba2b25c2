"""Survival estimators the reports share: Cox models, Kaplan-Meier and Aalen-Johansen (competing risks).

Pure numpy on arrays of durations (days) and events; the reports decide what an episode is.
"""
