"""etle.camera stage."""
