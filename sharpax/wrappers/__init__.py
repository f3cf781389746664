"""Wrappers around any optimizer: SAM and its family, Lookahead."""

from sharpax.wrappers._lookahead import LookaheadState as LookaheadState
from sharpax.wrappers._lookahead import lookahead as lookahead
from sharpax.wrappers._lookahead import lookahead_params as lookahead_params
from sharpax.wrappers._ranger import ranger as ranger
