"""Accounts: users, login sessions, projects with limits, and the API keys of each project."""
