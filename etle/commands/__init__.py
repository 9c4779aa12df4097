"""CLI command groups that belong to one stage each; registered in etle.cli."""
