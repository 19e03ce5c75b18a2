"""Figures of dancekit results: functions that return a matplotlib Figure (Agg backend, no pyplot)."""
