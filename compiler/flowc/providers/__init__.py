"""Compute providers flowc can price and (later) submit to."""
