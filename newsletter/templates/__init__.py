"""Jinja2 templates for the emails and web pages, installed as ``newsletter.templates``."""
