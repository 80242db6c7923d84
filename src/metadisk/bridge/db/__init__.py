"""SQLAlchemy implementations of the services' database protocols (SQLite and PostgreSQL).

Rows never leave this package: each store turns them into the plain dataclasses its service's
`db.py` declares.
"""
