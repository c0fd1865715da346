"""The plan as plain data (no torch): the tree of nodes and recipes, analytic costs, shape rules."""
