"""etle.store stage."""
