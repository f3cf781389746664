"""Wrappers around any optimizer: SAM and its family, Lookahead."""
