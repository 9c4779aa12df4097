"""etle.evidence stage."""
