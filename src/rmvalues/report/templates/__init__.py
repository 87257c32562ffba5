"""Jinja templates of the report (a package so the templates ship as package data)."""
