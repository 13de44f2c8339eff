"""Pure functions over a built ServiceGraph: views that make big maps readable."""
