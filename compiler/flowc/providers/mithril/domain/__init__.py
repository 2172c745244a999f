"""Mithril domain services: pricing statistics, the local price store, pricing sources."""
