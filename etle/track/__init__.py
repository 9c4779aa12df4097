"""etle.track stage."""
