"""etle.rules stage."""
