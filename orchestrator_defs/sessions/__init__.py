"""Coding sessions on Dagster: the wave job, its run tags, and the area's definitions."""
