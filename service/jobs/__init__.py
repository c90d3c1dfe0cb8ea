"""The job lifecycle: a scheduler claims queued studies, a launcher starts a driver, the driver runs it."""
