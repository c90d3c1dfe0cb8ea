"""The service: studies over HTTP, jobs on Ray, every trial in SQL (SQLite by default, PostgreSQL shared)."""
