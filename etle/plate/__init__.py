"""etle.plate stage."""
