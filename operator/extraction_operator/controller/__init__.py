"""The kopf shell around the pure planner: watches, API writes, workers, process entry."""
