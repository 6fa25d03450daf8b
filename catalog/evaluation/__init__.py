"""The founding article's experiments, apart from the product: bench, compare, altered variants,
reports. Nothing below imports it."""
