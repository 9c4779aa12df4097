"""etle.detect stage."""
