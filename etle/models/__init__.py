"""etle.models stage."""
