"""hepsbi."""
