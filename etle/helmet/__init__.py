"""Helmet classification of riders' heads (the no-helmet rule's model)."""

from etle.helmet.crops import head_box, square_crop

__all__ = ["head_box", "square_crop"]
